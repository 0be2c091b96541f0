package core_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

// idTestEpoch is a fixed instant for ID tests (ms precision, UTC).
var idTestEpoch = time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC)

// idTestCheckV7 asserts that id is a canonical lowercase UUIDv7 with the
// RFC 9562 variant.
func idTestCheckV7(t *testing.T, id core.ID) {
	t.Helper()
	s := string(id)
	require.Len(t, s, 36)
	got, err := core.ParseID(s)
	require.NoError(t, err)
	assert.Equal(t, id, got, "NewID must already be canonical lowercase")
	assert.Equal(t, strings.ToLower(s), s)
	assert.Equal(t, byte('7'), s[14], "version nibble")
	assert.Contains(t, "89ab", string(s[19]), "variant must be 10xx")
}

func TestNewIDIsUUIDv7(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		at   time.Time
	}{
		{name: "epoch", at: time.Unix(0, 0)},
		{name: "fixed", at: idTestEpoch},
		{name: "sub-ms is truncated", at: idTestEpoch.Add(999 * time.Microsecond)},
		{name: "far future", at: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
		{name: "non-UTC location", at: idTestEpoch.In(time.FixedZone("X", 5*3600))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for range 100 {
				idTestCheckV7(t, core.NewID(tc.at))
			}
		})
	}
}

func TestIDTimeRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		at   time.Time
	}{
		{name: "unix zero", at: time.Unix(0, 0)},
		{name: "one ms", at: time.UnixMilli(1)},
		{name: "fixed", at: idTestEpoch},
		{name: "sub-ms is dropped", at: idTestEpoch.Add(123 * time.Microsecond)},
		{name: "max 48-bit ms", at: time.UnixMilli(1<<48 - 1)},
		{name: "non-UTC location", at: idTestEpoch.In(time.FixedZone("Y", -7*3600))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := time.UnixMilli(tc.at.UnixMilli()).UTC()
			assert.Equal(t, want, core.NewID(tc.at).Time())
			assert.Equal(t, want, core.DeriveID(tc.at, "x").Time())
		})
	}
}

func TestIDTimeOfNonV7(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		id   core.ID
	}{
		{name: "empty", id: ""},
		{name: "garbage", id: "not-an-id"},
		{name: "v4", id: "0190f3a2-1b2c-4d5e-8f60-718293a4b5c6"},
		{name: "nil uuid", id: "00000000-0000-0000-0000-000000000000"},
		{name: "bad hex in time", id: "0190f3g2-1b2c-7d5e-8f60-718293a4b5c6"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.True(t, tc.id.Time().IsZero())
		})
	}
}

func TestNewIDSortsByTime(t *testing.T) {
	t.Parallel()
	var ids []string
	at := idTestEpoch
	// Consecutive milliseconds, then ever larger jumps so that every byte
	// of the 48-bit timestamp changes at least once.
	for i := range 2000 {
		ids = append(ids, string(core.NewID(at)))
		if i < 1000 {
			at = at.Add(time.Millisecond)
		} else {
			at = at.Add(time.Duration(i) * time.Duration(i) * time.Second)
		}
	}
	assert.True(t, slices.IsSorted(ids), "IDs made at increasing ms must sort increasingly as strings")
	for i := 1; i < len(ids); i++ {
		require.Less(t, ids[i-1], ids[i], "index %d", i)
	}
}

func TestNewIDUnique(t *testing.T) {
	t.Parallel()
	const n = 10_000
	seen := make(map[core.ID]struct{}, n)
	for range n {
		id := core.NewID(idTestEpoch) // same ms: uniqueness comes from the 74 random bits
		_, dup := seen[id]
		require.False(t, dup, "duplicate ID %s", id)
		seen[id] = struct{}{}
	}
	assert.Len(t, seen, n)
}

func TestDeriveID(t *testing.T) {
	t.Parallel()
	base := core.DeriveID(idTestEpoch, "consolidate", "a", "b")
	idTestCheckV7(t, base)
	assert.Equal(t, base, core.DeriveID(idTestEpoch, "consolidate", "a", "b"), "deterministic")
	assert.Equal(t, time.UnixMilli(idTestEpoch.UnixMilli()).UTC(), base.Time())

	tests := []struct {
		name string
		a, b core.ID
	}{
		{name: "first part", a: core.DeriveID(idTestEpoch, "x", "a", "b"), b: base},
		{name: "middle part", a: core.DeriveID(idTestEpoch, "consolidate", "A", "b"), b: base},
		{name: "last part", a: core.DeriveID(idTestEpoch, "consolidate", "a", "c"), b: base},
		{name: "part order", a: core.DeriveID(idTestEpoch, "consolidate", "b", "a"), b: base},
		{name: "time", a: core.DeriveID(idTestEpoch.Add(time.Millisecond), "consolidate", "a", "b"), b: base},
		{name: "boundary ab|c vs a|bc", a: core.DeriveID(idTestEpoch, "ab", "c"), b: core.DeriveID(idTestEpoch, "a", "bc")},
		{name: "boundary joined", a: core.DeriveID(idTestEpoch, "abc"), b: core.DeriveID(idTestEpoch, "ab", "c")},
		{name: "extra empty part", a: core.DeriveID(idTestEpoch, "a"), b: core.DeriveID(idTestEpoch, "a", "")},
		{name: "empty vs none", a: core.DeriveID(idTestEpoch), b: core.DeriveID(idTestEpoch, "")},
		{name: "length prefix is not forgeable", a: core.DeriveID(idTestEpoch, "a", "b"),
			b: core.DeriveID(idTestEpoch, "a\x00\x00\x00\x00\x00\x00\x00\x01b")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			idTestCheckV7(t, tc.a)
			idTestCheckV7(t, tc.b)
			assert.NotEqual(t, tc.a, tc.b)
		})
	}
}

func TestDeriveIDSameMSDiffersOnlyInRandomBits(t *testing.T) {
	t.Parallel()
	a := core.DeriveID(idTestEpoch, "p")
	b := core.DeriveID(idTestEpoch.Add(500*time.Microsecond), "p")
	assert.Equal(t, a, b, "sub-millisecond differences do not change a derived ID")
}

func TestParseID(t *testing.T) {
	t.Parallel()
	const good = "0190f3a2-1b2c-7d5e-8f60-718293a4b5c6"
	tests := []struct {
		name    string
		in      string
		want    core.ID
		wantErr bool
	}{
		{name: "canonical lowercase", in: good, want: good},
		{name: "upper case is lowercased", in: strings.ToUpper(good), want: good},
		{name: "mixed case is lowercased", in: "0190F3a2-1B2c-7D5E-8f60-718293A4b5C6", want: good},
		{name: "any version", in: "0190f3a2-1b2c-4d5e-8f60-718293a4b5c6", want: "0190f3a2-1b2c-4d5e-8f60-718293a4b5c6"},
		{name: "nil uuid", in: "00000000-0000-0000-0000-000000000000", want: "00000000-0000-0000-0000-000000000000"},
		{name: "empty", in: "", wantErr: true},
		{name: "35 chars", in: good[:35], wantErr: true},
		{name: "37 chars", in: good + "0", wantErr: true},
		{name: "no dashes", in: strings.ReplaceAll(good, "-", ""), wantErr: true},
		{name: "no dashes padded to 36", in: strings.ReplaceAll(good, "-", "") + "0000", wantErr: true},
		{name: "g hex", in: "0190f3g2-1b2c-7d5e-8f60-718293a4b5c6", wantErr: true},
		{name: "G hex", in: "0190f3G2-1b2c-7d5e-8f60-718293a4b5c6", wantErr: true},
		{name: "dash shifted left", in: "0190f3a-21b2c-7d5e-8f60-718293a4b5c6", wantErr: true},
		{name: "dash shifted right", in: "0190f3a21-b2c-7d5e-8f60-718293a4b5c6", wantErr: true},
		{name: "dash in last group", in: "0190f3a2-1b2c-7d5e-8f60-718293a4-5c6", wantErr: true},
		{name: "underscore for dash", in: "0190f3a2_1b2c_7d5e_8f60_718293a4b5c6", wantErr: true},
		{name: "braces", in: "{0190f3a2-1b2c-7d5e-8f60-718293a4b5c}", wantErr: true},
		{name: "urn prefix", in: "urn:uuid:" + good, wantErr: true},
		{name: "space", in: " 190f3a2-1b2c-7d5e-8f60-718293a4b5c6", wantErr: true},
		{name: "non-ASCII", in: "0190f3a2-1b2c-7d5e-8f60-718293a4b5é", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := core.ParseID(tc.in)
			if !tc.wantErr {
				require.NoError(t, err)
				assert.Equal(t, tc.want, got)
				return
			}
			require.Error(t, err)
			assert.Empty(t, got)
			assert.ErrorIs(t, err, core.ErrInvalid)
			var fe *core.FieldError
			require.True(t, errors.As(err, &fe))
			assert.Equal(t, "id", fe.Field)
		})
	}
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{
		"", "0190f3a2-1b2c-7d5e-8f60-718293a4b5c6", "0190F3A2-1B2C-7D5E-8F60-718293A4B5C6",
		"0190f3a2-1b2c-7d5e-8f60-718293a4b5c", "0190f3a21b2c7d5e8f60718293a4b5c6",
		"zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", "------------------------------------",
		string(core.NewID(idTestEpoch)),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := core.ParseID(s)
		if err != nil {
			if id != "" {
				t.Fatalf("ParseID(%q) returned %q with error %v", s, id, err)
			}
			if !errors.Is(err, core.ErrInvalid) {
				t.Fatalf("ParseID(%q) error %v does not match ErrInvalid", s, err)
			}
			return
		}
		if len(id) != 36 {
			t.Fatalf("ParseID(%q) = %q: %d bytes", s, id, len(id))
		}
		if string(id) != strings.ToLower(string(id)) {
			t.Fatalf("ParseID(%q) = %q: not lowercase", s, id)
		}
		if !strings.EqualFold(s, string(id)) {
			t.Fatalf("ParseID(%q) = %q: not the same UUID", s, id)
		}
		again, err := core.ParseID(string(id))
		if err != nil || again != id {
			t.Fatalf("ParseID not idempotent on %q: %q, %v", id, again, err)
		}
		_ = id.Time() // must not panic
	})
}
