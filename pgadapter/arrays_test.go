package pgadapter

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/pgvector/pgvector-go"
	pgxvec "github.com/pgvector/pgvector-go/pgx"
	"github.com/stretchr/testify/require"
)

// Any OIDs do for encoding: the element OID is written into the array.
const (
	testVectorOID      uint32 = 90001
	testVectorArrayOID uint32 = 90002
)

// pgxEncode encodes v as pgx does without arrayCodec; ourEncode with it.
func pgxEncode(t testing.TB, oid uint32, v any) []byte {
	t.Helper()
	tm := pgtype.NewMap()
	vt := &pgtype.Type{Name: "vector", OID: testVectorOID, Codec: &pgxvec.VectorCodec{}}
	tm.RegisterType(vt)
	tm.RegisterType(&pgtype.Type{Name: "_vector", OID: testVectorArrayOID, Codec: &pgtype.ArrayCodec{ElementType: vt}})
	b, err := tm.Encode(oid, pgtype.BinaryFormatCode, v, nil)
	require.NoError(t, err)
	return b
}

func ourEncode(t testing.TB, oid uint32, v any) []byte {
	t.Helper()
	tm := pgtype.NewMap()
	arr := testVectorArrayOID
	registerCodecs(tm, testVectorOID, &arr)
	b, err := tm.Encode(oid, pgtype.BinaryFormatCode, v, []byte("prefix"))
	require.NoError(t, err)
	if b == nil {
		return nil // NULL
	}
	require.Equal(t, "prefix", string(b[:6]), "Encode must append to the buffer it is given")
	return b[6:]
}

func ptr(s string) *string { return &s }

func TestArrayCodecMatchesPgx(t *testing.T) {
	t.Parallel()
	texts := []struct {
		name string
		v    []string
	}{
		{"nil is NULL", nil},
		{"empty", []string{}},
		{"one empty string", []string{""}},
		{"several", []string{"a", "", "héllo, \"wörld\"", "NULL", strings.Repeat("x", 70_000)}},
	}
	for _, tc := range texts {
		t.Run("text/"+tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, pgxEncode(t, pgtype.TextArrayOID, tc.v), ourEncode(t, pgtype.TextArrayOID, textArray(tc.v)))
		})
	}
	nulls := []struct {
		name string
		v    []*string
	}{
		{"nil is NULL", nil},
		{"empty", []*string{}},
		{"no nulls", []*string{ptr(`["a"]`), ptr("")}},
		{"all null", []*string{nil, nil}},
		{"mixed", []*string{nil, ptr(`{"dev":1}`), nil, ptr("")}},
	}
	for _, tc := range nulls {
		t.Run("null text/"+tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, pgxEncode(t, pgtype.TextArrayOID, tc.v), ourEncode(t, pgtype.TextArrayOID, nullTextArray(tc.v)))
		})
	}
	vectors := []struct {
		name string
		v    [][]float32
	}{
		{"nil is NULL", nil},
		{"empty", [][]float32{}},
		{"one", [][]float32{{1, -2.5, float32(math.Copysign(0, -1)), math.MaxFloat32, math.SmallestNonzeroFloat32}}},
		{"768-d", [][]float32{make([]float32, 768), seqVector(768)}},
	}
	for _, tc := range vectors {
		t.Run("vector/"+tc.name, func(t *testing.T) {
			t.Parallel()
			var want []pgvector.Vector
			if tc.v != nil {
				want = make([]pgvector.Vector, len(tc.v))
			}
			for i, x := range tc.v {
				want[i] = pgvector.NewVector(x)
			}
			require.Equal(t, pgxEncode(t, testVectorArrayOID, want), ourEncode(t, testVectorArrayOID, vectorArray(tc.v)))
		})
	}
}

func seqVector(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i)/float32(n) - 0.5
	}
	return v
}

// TestArrayCodecDelegates checks that values other than ours still go
// through pgx's plans, in both formats.
func TestArrayCodecDelegates(t *testing.T) {
	t.Parallel()
	for _, format := range []int16{pgtype.BinaryFormatCode, pgtype.TextFormatCode} {
		v := []string{"a", "b c"}
		want, err := pgtype.NewMap().Encode(pgtype.TextArrayOID, format, v, nil)
		require.NoError(t, err)
		tm := pgtype.NewMap()
		registerCodecs(tm, testVectorOID, nil)
		got, err := tm.Encode(pgtype.TextArrayOID, format, v, nil)
		require.NoError(t, err)
		require.Equal(t, want, got, "format %d", format)
	}
}

// FuzzArrayCodec compares the text[] encodings with pgx's. The input is
// split on '|' into elements; an element "~" is NULL in the nullable form.
func FuzzArrayCodec(f *testing.F) {
	for _, s := range []string{"", "a", "a|b", "~|x|", "|||", "é|\x00|~"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		elems := strings.Split(s, "|")
		require.Equal(t, pgxEncode(t, pgtype.TextArrayOID, elems), ourEncode(t, pgtype.TextArrayOID, textArray(elems)))
		ptrs := make([]*string, len(elems))
		for i, e := range elems {
			if e != "~" {
				ptrs[i] = &elems[i]
			}
		}
		require.Equal(t, pgxEncode(t, pgtype.TextArrayOID, ptrs), ourEncode(t, pgtype.TextArrayOID, nullTextArray(ptrs)))
	})
}

// TestArrayCodecRoundTrip sends the arrays to PostgreSQL and reads them
// back.
func TestArrayCodecRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testURL(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(ctx) })
	require.NoError(t, registerTypes(ctx, conn))

	texts := textArray{"a", "", "héllo", strings.Repeat("y", 10_000)}
	var gotTexts []string
	require.NoError(t, conn.QueryRow(ctx, "SELECT $1::text[]", texts).Scan(&gotTexts))
	require.Equal(t, []string(texts), gotTexts)

	nulls := nullTextArray{nil, ptr("x"), ptr("")}
	var gotNulls []*string
	require.NoError(t, conn.QueryRow(ctx, "SELECT $1::text[]", nulls).Scan(&gotNulls))
	require.Equal(t, []*string(nulls), gotNulls)

	var n int
	require.NoError(t, conn.QueryRow(ctx, "SELECT cardinality($1::text[])", textArray{}).Scan(&n))
	require.Zero(t, n)

	vecs := vectorArray{seqVector(768), {1, 2, 3}}
	var gotVecs []pgvector.Vector
	require.NoError(t, conn.QueryRow(ctx, "SELECT $1::vector[]", vecs).Scan(&gotVecs))
	require.Len(t, gotVecs, 2)
	for i := range vecs {
		require.Equal(t, vecs[i], gotVecs[i].Slice())
	}
}

// TestArrayLiteralRoundTrip casts arrayLiteral's text to text[] in
// PostgreSQL and reads the elements back.
func TestArrayLiteralRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testURL(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(ctx) })
	tests := []struct {
		name string
		v    []string
	}{
		{"nil is NULL", nil},
		{"empty", []string{}},
		{"one", []string{"bench"}},
		{"syntax", []string{`a"b`, `c\d`, `\`, `"`, `{x}`, `NULL`, ``, ` sp `, `a,b`, `é`, `'`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			require.NoError(t, conn.QueryRow(ctx, "SELECT $1::text::text[]", arrayLiteral(tc.v)).Scan(&got))
			require.Equal(t, tc.v, got)
		})
	}
}

func TestArrayCodecRejectsHugeVector(t *testing.T) {
	t.Parallel()
	tm := pgtype.NewMap()
	arr := testVectorArrayOID
	registerCodecs(tm, testVectorOID, &arr)
	_, err := tm.Encode(testVectorArrayOID, pgtype.BinaryFormatCode, vectorArray{{1}, make([]float32, 1<<16)}, nil)
	require.ErrorContains(t, err, "vector 1 of the array has 65536 dimensions")
}
