package tests

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
	"github.com/athena-edge/athena-edge/pgadapter"
	"github.com/athena-edge/athena-edge/sqlitevec"
	edgesync "github.com/athena-edge/athena-edge/sync"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// storeKind opens a fresh, empty store of one kind for a test.
type storeKind struct {
	name string
	open func(t *testing.T) core.Backend
	// approx opens the store configured to use its approximate vector
	// index even on small collections (nil: the store has none).
	approx func(t *testing.T) core.Backend
}

// allStores returns every store athena-edge ships: the in-memory
// reference, the SQLite edge store and the PostgreSQL central store (on a
// fresh schema, dropped after the test; skipped only when
// ATHENA_TEST_PG_URL is unset, which scripts/test.sh never leaves it).
func allStores() []storeKind {
	return []storeKind{
		{name: "memstore", open: func(t *testing.T) core.Backend { return memstore.New() }},
		{name: "sqlitevec", open: func(t *testing.T) core.Backend { return openSQLite(t, sqlitevec.Config{}) },
			approx: func(t *testing.T) core.Backend { return openSQLite(t, sqlitevec.Config{ExactThreshold: 1}) }},
		{name: "pgadapter", open: func(t *testing.T) core.Backend { return openPG(t, nil) },
			approx: func(t *testing.T) core.Backend {
				return openPG(t, func(c *pgadapter.Config) { c.ExactBelow = -1 })
			}},
	}
}

func openSQLite(t *testing.T, cfg sqlitevec.Config) *sqlitevec.Store {
	t.Helper()
	s, err := sqlitevec.Open(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// openPG opens a pgadapter store on a fresh schema.
func openPG(t *testing.T, mod func(*pgadapter.Config)) *pgadapter.Store {
	t.Helper()
	url := os.Getenv("ATHENA_TEST_PG_URL")
	if url == "" {
		t.Skip("ATHENA_TEST_PG_URL not set; run scripts/pg.sh or scripts/test.sh")
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	cfg := pgadapter.Config{DSN: url, Schema: schema, MinConns: 1, MaxConns: 4}
	if mod != nil {
		mod(&cfg)
	}
	s, err := pgadapter.New(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = s.Pool().Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		_ = s.Close()
	})
	return s
}

// serveSync serves srv on a loopback httptest server until the test ends
// (then shuts srv down and drops its connections) and returns the sync
// endpoint's ws:// URL.
func serveSync(t *testing.T, srv *edgesync.Server) string {
	t.Helper()
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		ts.CloseClientConnections()
		ts.Close()
	})
	return "ws" + strings.TrimPrefix(ts.URL, "http") + edgesync.PathSync
}
