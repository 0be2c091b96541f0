package pgadapter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"math"
	mrand "math/rand/v2"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// testURL returns ATHENA_TEST_PG_URL or skips the test.
func testURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("ATHENA_TEST_PG_URL")
	if u == "" {
		t.Skip("ATHENA_TEST_PG_URL is not set (scripts/pg.sh | tail -1 provisions one)")
	}
	return u
}

// testSchema returns a fresh schema name, dropped when the test ends.
func testSchema(t testing.TB) string {
	t.Helper()
	url := testURL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Logf("cleanup: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Logf("cleanup: drop schema %s: %v", schema, err)
		}
	})
	return schema
}

// openTest opens a Store on a fresh schema.
func openTest(t testing.TB, mod ...func(*Config)) *Store {
	t.Helper()
	cfg := Config{DSN: testURL(t), Schema: testSchema(t), MinConns: 1, MaxConns: 8}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := New(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// adminConn is a plain connection for test administration.
func adminConn(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, testURL(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(ctx) })
	return c
}

// randUnit returns a random unit vector.
func randUnit(r *mrand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	var n float64
	for i := range v {
		x := r.NormFloat64()
		v[i] = float32(x)
		n += x * x
	}
	n = math.Sqrt(n)
	for i := range v {
		v[i] = float32(float64(v[i]) / n)
	}
	return v
}
