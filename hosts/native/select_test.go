package native_test

import (
	"path/filepath"
	"testing"

	"github.com/athena-edge/athena-edge/hosts/native"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSelect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		env      map[string]string
		dbFlag   string
		kind     string
		explicit bool
		where    string
		err      bool
	}{
		{name: "default is sqlite in home", kind: native.KindSQLite, where: "/home/u/.athena/memory.db"},
		{name: "db path", env: map[string]string{"ATHENA_DB_PATH": "/tmp/x.db"}, kind: native.KindSQLite, where: "/tmp/x.db"},
		{name: "explicit sqlite beats host", env: map[string]string{"ATHENA_DB_TYPE": "sqlite", "ATHENA_POSTGRES_HOST": "db"}, kind: native.KindSQLite, explicit: true, where: "/home/u/.athena/memory.db"},
		{name: "implicit postgres from host", env: map[string]string{"ATHENA_POSTGRES_HOST": "db", "ATHENA_POSTGRES_PORT": "6543"}, kind: native.KindPostgres, where: "postgres://athena@db:6543/athena"},
		{name: "implicit postgres from url", env: map[string]string{"ATHENA_POSTGRES_URL": "postgres://u:secret@h/d"}, kind: native.KindPostgres, where: "postgres://u:xxxxx@h/d"},
		{name: "explicit postgres defaults to localhost", env: map[string]string{"ATHENA_DB_TYPE": "postgres"}, kind: native.KindPostgres, explicit: true, where: "postgres://athena@localhost:5432/athena"},
		{name: "db flag path", dbFlag: "/tmp/flag.db", env: map[string]string{"ATHENA_DB_TYPE": "postgres"}, kind: native.KindSQLite, explicit: true, where: "/tmp/flag.db"},
		{name: "db flag url", dbFlag: "postgres://a@b/c", kind: native.KindPostgres, explicit: true, where: "postgres://a@b/c"},
		{name: "unknown type", env: map[string]string{"ATHENA_DB_TYPE": "mysql"}, err: true},
		{name: "bad port", env: map[string]string{"ATHENA_POSTGRES_PORT": "x"}, err: true},
		{name: "min over max", env: map[string]string{"ATHENA_POSTGRES_MIN_SIZE": "20"}, err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := native.Select(func(k string) string { return tc.env[k] }, "/home/u", tc.dbFlag)
			if tc.err {
				require.ErrorIs(t, err, native.ErrConfig)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.kind, s.Kind)
			assert.Equal(t, tc.explicit, s.Explicit)
			assert.Equal(t, tc.where, s.Where())
			assert.NotEmpty(t, s.Reason)
		})
	}
}

// The seed's 21st scenario: the factory reports both backends.
func TestBackends(t *testing.T) {
	t.Parallel()
	assert.Equal(t, []string{"sqlite", "postgres"}, native.Backends())
}

func TestSelectPoolDefaults(t *testing.T) {
	t.Parallel()
	s, err := native.Select(func(string) string { return "" }, "/h", "")
	require.NoError(t, err)
	assert.Zero(t, s.Postgres.MinConns, "zero means pgadapter's default of 2")
	assert.Zero(t, s.Postgres.MaxConns, "zero means pgadapter's default of 10")
}

// Two processes opening a new store at once must agree on its device ID.
func TestDeviceIDRace(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "m.db")
	sel := native.Selection{Kind: native.KindSQLite, Path: path}
	const n = 8
	ids := make(chan string, n)
	for range n {
		go func() {
			id, err := native.DeviceID(sel)
			if err != nil {
				ids <- "error: " + err.Error()
				return
			}
			ids <- id
		}()
	}
	first := <-ids
	require.Contains(t, first, "edge-")
	for range n - 1 {
		assert.Equal(t, first, <-ids)
	}
}
