package tests

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestPostgresHasPgvector checks that the PostgreSQL server named by
// ATHENA_TEST_PG_URL (see scripts/pg.sh) has a working pgvector extension.
func TestPostgresHasPgvector(t *testing.T) {
	t.Parallel()

	url := os.Getenv("ATHENA_TEST_PG_URL")
	if url == "" {
		t.Skip("ATHENA_TEST_PG_URL not set; run scripts/pg.sh or scripts/test.sh")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })

	_, err = conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS vector")
	require.NoError(t, err)

	tests := []struct {
		name string
		a, b string
		want float64
	}{
		{name: "orthogonal", a: "[1,0,0]", b: "[0,1,0]", want: 1},
		{name: "parallel", a: "[1,2,3]", b: "[2,4,6]", want: 0},
		{name: "opposite", a: "[1,0,0]", b: "[-1,0,0]", want: 2},
	}
	for _, tc := range tests {
		var got float64
		err := conn.QueryRow(ctx, "SELECT $1::vector <=> $2::vector", tc.a, tc.b).Scan(&got)
		require.NoError(t, err, tc.name)
		require.InDelta(t, tc.want, got, 1e-6, "%s: %s <=> %s", tc.name, tc.a, tc.b)
	}
}
