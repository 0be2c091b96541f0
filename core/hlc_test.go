package core_test

import (
	"encoding/binary"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

// hlcTestEpoch is the physical time HLC tests start at.
var hlcTestEpoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// hlcTestPhys is a settable physical clock, safe for concurrent use.
type hlcTestPhys struct {
	mu sync.Mutex
	t  time.Time
}

func hlcTestNewPhys(t time.Time) *hlcTestPhys { return &hlcTestPhys{t: t} }

func (p *hlcTestPhys) Now() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.t
}

func (p *hlcTestPhys) Set(t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.t = t
}

func (p *hlcTestPhys) Add(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.t = p.t.Add(d)
}

func (p *hlcTestPhys) MS() int64 { return p.Now().UnixMilli() }

func TestHLCRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		wall    int64
		logical uint16
		str     string
	}{
		{name: "zero", wall: 0, logical: 0, str: "0.0"},
		{name: "logical only", wall: 0, logical: 7, str: "0.7"},
		{name: "wall only", wall: 1767323045000, logical: 0, str: "1767323045000.0"},
		{name: "both", wall: 1767323045000, logical: 42, str: "1767323045000.42"},
		{name: "max logical", wall: 1767323045000, logical: math.MaxUint16, str: "1767323045000.65535"},
		{name: "max wall", wall: 1<<48 - 1, logical: math.MaxUint16, str: "281474976710655.65535"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := core.MakeHLC(tc.wall, tc.logical)
			assert.Equal(t, tc.wall, h.WallMS())
			assert.Equal(t, tc.logical, h.Logical())
			assert.Equal(t, tc.str, h.String())
			assert.Equal(t, time.UnixMilli(tc.wall).UTC(), h.Time())
			assert.Equal(t, core.HLC(uint64(tc.wall)<<16|uint64(tc.logical)), h, "HLCs compare as integers")
		})
	}
	assert.Less(t, core.MakeHLC(5, math.MaxUint16), core.MakeHLC(6, 0), "wall dominates logical")
}

func TestClockNowMonotonic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		steps []time.Duration // physical clock moves before each Now
	}{
		{name: "advancing", steps: []time.Duration{time.Millisecond, time.Millisecond, time.Second, time.Hour}},
		{name: "standing still", steps: []time.Duration{0, 0, 0, 0, 0, 0}},
		{name: "sub-ms steps", steps: []time.Duration{time.Microsecond, 100 * time.Microsecond, 10 * time.Microsecond}},
		{name: "going backwards", steps: []time.Duration{-time.Millisecond, -time.Second, -time.Hour, -24 * time.Hour}},
		{name: "back then forward", steps: []time.Duration{-time.Hour, 30 * time.Minute, 29 * time.Minute, 2 * time.Minute, 0}},
		{name: "to before 1970 and back", steps: []time.Duration{-60 * 365 * 24 * time.Hour, 60 * 365 * 24 * time.Hour}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			phys := hlcTestNewPhys(hlcTestEpoch)
			c := core.NewClock(core.ClockConfig{Now: phys.Now})
			prev := c.Now()
			assert.Equal(t, core.MakeHLC(hlcTestEpoch.UnixMilli(), 0), prev, "first Now is the physical time")
			for i, d := range tc.steps {
				phys.Add(d)
				h := c.Now()
				require.Greater(t, h, prev, "step %d (%s)", i, d)
				require.GreaterOrEqual(t, h.WallMS(), hlcTestEpoch.UnixMilli(), "never behind the highest physical time seen")
				assert.Equal(t, h, c.Last())
				prev = h
			}
		})
	}
}

func TestClockNowFollowsPhysical(t *testing.T) {
	t.Parallel()
	phys := hlcTestNewPhys(hlcTestEpoch)
	c := core.NewClock(core.ClockConfig{Now: phys.Now})
	assert.Equal(t, core.MakeHLC(phys.MS(), 0), c.Now())
	assert.Equal(t, core.MakeHLC(phys.MS(), 1), c.Now())
	phys.Add(time.Millisecond)
	assert.Equal(t, core.MakeHLC(phys.MS(), 0), c.Now(), "a new millisecond resets the counter")
	phys.Add(-time.Second)
	assert.Equal(t, core.MakeHLC(hlcTestEpoch.UnixMilli()+1, 1), c.Now(), "a clock going back only ticks the counter")
	assert.Equal(t, phys.Now(), c.PhysicalNow())
}

func TestClockLogicalOverflow(t *testing.T) {
	t.Parallel()
	phys := hlcTestNewPhys(hlcTestEpoch)
	c := core.NewClock(core.ClockConfig{Now: phys.Now})
	pt := phys.MS()
	var prev core.HLC
	for i := 0; i <= math.MaxUint16; i++ {
		h := c.Now() // plain comparisons: testify is too slow for 65536 rounds under -race
		if h != core.MakeHLC(pt, uint16(i)) || h <= prev {
			t.Fatalf("Now() #%d = %s after %s, want %s", i, h, prev, core.MakeHLC(pt, uint16(i)))
		}
		prev = h
	}
	// The 65537th timestamp in one millisecond bumps the wall.
	h := c.Now()
	assert.Equal(t, core.MakeHLC(pt+1, 0), h)
	assert.Greater(t, h, prev)
	// When physical time reaches the bumped wall, the counter continues.
	phys.Add(time.Millisecond)
	assert.Equal(t, core.MakeHLC(pt+1, 1), c.Now())
	phys.Add(time.Millisecond)
	assert.Equal(t, core.MakeHLC(pt+2, 0), c.Now())
}

func TestClockObserve(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		remote func(pt int64) core.HLC
		want   func(pt int64) core.HLC // the Now() after observing
	}{
		{name: "remote ahead", remote: func(pt int64) core.HLC { return core.MakeHLC(pt+5000, 3) },
			want: func(pt int64) core.HLC { return core.MakeHLC(pt+5000, 4) }},
		{name: "remote same ms higher counter", remote: func(pt int64) core.HLC { return core.MakeHLC(pt, 9) },
			want: func(pt int64) core.HLC { return core.MakeHLC(pt, 10) }},
		{name: "remote at max counter", remote: func(pt int64) core.HLC { return core.MakeHLC(pt+10, math.MaxUint16) },
			want: func(pt int64) core.HLC { return core.MakeHLC(pt+11, 0) }},
		{name: "remote behind", remote: func(pt int64) core.HLC { return core.MakeHLC(pt-5000, 100) },
			want: func(pt int64) core.HLC { return core.MakeHLC(pt, 1) }},
		{name: "remote zero", remote: func(int64) core.HLC { return 0 },
			want: func(pt int64) core.HLC { return core.MakeHLC(pt, 1) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			phys := hlcTestNewPhys(hlcTestEpoch)
			c := core.NewClock(core.ClockConfig{Now: phys.Now})
			pt := phys.MS()
			first := c.Now() // pt.0
			remote := tc.remote(pt)
			require.NoError(t, c.Observe(remote))
			assert.Equal(t, max(first, remote), c.Last(), "Observe keeps the max")
			h := c.Now()
			assert.Equal(t, tc.want(pt), h)
			assert.Greater(t, h, remote, "every later Now orders after the observed remote")
			assert.Greater(t, h, first)
		})
	}
}

func TestClockObserveSkew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		maxSkew time.Duration
		ahead   int64    // remote wall minus physical now, in ms
		raw     core.HLC // if set, the remote, instead of ahead
		ok      bool
		wantMax time.Duration
	}{
		{name: "default: exactly at the bound", maxSkew: 0, ahead: 60_000, ok: true},
		{name: "default: 1ms over", maxSkew: 0, ahead: 60_001, ok: false, wantMax: core.DefaultMaxSkew},
		{name: "default: far over", maxSkew: 0, ahead: 3_600_000, ok: false, wantMax: core.DefaultMaxSkew},
		{name: "negative means default: at bound", maxSkew: -time.Second, ahead: 60_000, ok: true},
		{name: "negative means default: over", maxSkew: -time.Second, ahead: 60_001, ok: false, wantMax: core.DefaultMaxSkew},
		{name: "custom: at bound", maxSkew: 5 * time.Second, ahead: 5000, ok: true},
		{name: "custom: 1ms over", maxSkew: 5 * time.Second, ahead: 5001, ok: false, wantMax: 5 * time.Second},
		{name: "custom sub-ms: below", maxSkew: 1500 * time.Microsecond, ahead: 1, ok: true},
		{name: "custom sub-ms: over", maxSkew: 1500 * time.Microsecond, ahead: 2, ok: false, wantMax: 1500 * time.Microsecond},
		{name: "behind is fine", maxSkew: time.Second, ahead: -1_000_000, ok: true},
		// Far enough ahead that ahead-in-nanoseconds overflows int64
		// (more than ~292 years): must still be rejected.
		{name: "317 years ahead", maxSkew: 0, ahead: 10_000_000_000_000, ok: false, wantMax: core.DefaultMaxSkew},
		{name: "max HLC", raw: math.MaxUint64, ok: false, wantMax: core.DefaultMaxSkew},
		{name: "max 48-bit wall", raw: core.MakeHLC(1<<48-1, 0), ok: false, wantMax: core.DefaultMaxSkew},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			phys := hlcTestNewPhys(hlcTestEpoch)
			c := core.NewClock(core.ClockConfig{Now: phys.Now, MaxSkew: tc.maxSkew})
			before := c.Now()
			remote := core.MakeHLC(phys.MS()+tc.ahead, 0)
			if tc.raw != 0 {
				remote = tc.raw
			}
			err := c.Observe(remote)
			if tc.ok {
				require.NoError(t, err)
				assert.Greater(t, c.Now(), remote)
				return
			}
			require.Error(t, err, "remote %s must be rejected", remote)
			assert.ErrorIs(t, err, core.ErrInvalid)
			var se *core.SkewError
			require.True(t, errors.As(err, &se), "want *SkewError, got %T", err)
			assert.Equal(t, remote, se.Remote)
			assert.Equal(t, tc.wantMax, se.Max)
			assert.Greater(t, se.Ahead, se.Max)
			assert.Contains(t, err.Error(), remote.String())
			assert.Equal(t, before, c.Last(), "a rejected remote is not observed")
			assert.Equal(t, core.MakeHLC(before.WallMS(), before.Logical()+1), c.Now())
		})
	}
}

func TestStampCompare(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a, b core.Stamp
		want int
	}{
		{name: "zero equals zero", a: core.Stamp{}, b: core.Stamp{}, want: 0},
		{name: "zero is older than a device-only stamp", a: core.Stamp{}, b: core.Stamp{Device: "a"}, want: -1},
		{name: "zero is older than any HLC", a: core.Stamp{}, b: core.Stamp{HLC: 1}, want: -1},
		{name: "older HLC", a: core.Stamp{HLC: 10, Device: "z"}, b: core.Stamp{HLC: 11, Device: "a"}, want: -1},
		{name: "newer HLC", a: core.Stamp{HLC: 12, Device: "a"}, b: core.Stamp{HLC: 11, Device: "z"}, want: 1},
		{name: "logical decides", a: core.Stamp{HLC: core.MakeHLC(5, 2)}, b: core.Stamp{HLC: core.MakeHLC(5, 1)}, want: 1},
		{name: "wall beats logical", a: core.Stamp{HLC: core.MakeHLC(5, 65535)}, b: core.Stamp{HLC: core.MakeHLC(6, 0)}, want: -1},
		{name: "device tie-break lower", a: core.Stamp{HLC: 10, Device: "a"}, b: core.Stamp{HLC: 10, Device: "b"}, want: -1},
		{name: "device tie-break higher", a: core.Stamp{HLC: 10, Device: "b"}, b: core.Stamp{HLC: 10, Device: "a"}, want: 1},
		{name: "device tie-break is bytewise", a: core.Stamp{HLC: 10, Device: "B"}, b: core.Stamp{HLC: 10, Device: "a"}, want: -1},
		{name: "device prefix", a: core.Stamp{HLC: 10, Device: "dev"}, b: core.Stamp{HLC: 10, Device: "dev-a"}, want: -1},
		{name: "identical", a: core.Stamp{HLC: 10, Device: "a"}, b: core.Stamp{HLC: 10, Device: "a"}, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, tc.a.Compare(tc.b))
			assert.Equal(t, -tc.want, tc.b.Compare(tc.a), "antisymmetric")
			assert.Equal(t, tc.want > 0, tc.a.After(tc.b))
			assert.Equal(t, tc.want < 0, tc.b.After(tc.a))
		})
	}
}

func TestChangeStamp(t *testing.T) {
	t.Parallel()
	c := core.Change{Device: "dev-a", HLC: 77}
	assert.Equal(t, core.Stamp{HLC: 77, Device: "dev-a"}, c.Stamp())
}

func TestClockConcurrentNow(t *testing.T) {
	t.Parallel()
	const goroutines, perG = 8, 1000
	phys := hlcTestNewPhys(hlcTestEpoch)
	c := core.NewClock(core.ClockConfig{Now: phys.Now})
	out := make([][]core.HLC, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hs := make([]core.HLC, 0, perG)
			for i := range perG {
				switch {
				case g == 0 && i%50 == 0:
					phys.Add(time.Millisecond) // physical time moves...
				case g == 1 && i%70 == 0:
					phys.Add(-3 * time.Millisecond) // ...and sometimes backwards
				case g == 2 && i%100 == 0:
					_ = c.Observe(core.MakeHLC(phys.MS()+20, 0))
				}
				hs = append(hs, c.Now())
			}
			out[g] = hs
		}()
	}
	wg.Wait()
	seen := make(map[core.HLC]bool, goroutines*perG)
	for g, hs := range out {
		for i, h := range hs {
			require.False(t, seen[h], "duplicate HLC %s", h)
			seen[h] = true
			if i > 0 {
				require.Greater(t, h, hs[i-1], "goroutine %d went backwards at %d", g, i)
			}
		}
	}
	assert.Len(t, seen, goroutines*perG)
}

// FuzzHLCMerge drives a clock with an arbitrary program: each op byte picks
// Now, Observe of an arbitrary 64-bit remote, Observe of a remote near the
// skew bound, or a physical clock jump (forward or back). Every Now must be
// strictly greater than every timestamp issued or accepted before it.
func FuzzHLCMerge(f *testing.F) {
	f.Add([]byte{0, 0, 0})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0})
	f.Add([]byte{3, 0x00, 0x00, 0xea, 0x60, 0, 3, 0x00, 0x00, 0xea, 0x61, 0})
	f.Add([]byte{2, 0x80, 0x00, 0, 2, 0x7f, 0xff, 0, 0, 0})
	f.Add([]byte{1, 0x00, 0x09, 0x18, 0x4e, 0x72, 0xa0, 0x00, 0x00, 0}) // ~317 years ahead
	f.Fuzz(func(t *testing.T, prog []byte) {
		phys := hlcTestNewPhys(hlcTestEpoch)
		const skew = 10 * time.Second
		c := core.NewClock(core.ClockConfig{Now: phys.Now, MaxSkew: skew})
		var high core.HLC // highest timestamp issued or accepted
		observe := func(remote core.HLC) {
			pt := phys.MS()
			before := c.Last()
			err := c.Observe(remote)
			if err != nil {
				var se *core.SkewError
				if !errors.As(err, &se) || !errors.Is(err, core.ErrInvalid) {
					t.Fatalf("Observe(%s): want *SkewError, got %T %v", remote, err, err)
				}
				if remote.WallMS()-pt <= skew.Milliseconds() {
					t.Fatalf("Observe(%s) rejected although only %dms ahead", remote, remote.WallMS()-pt)
				}
				if c.Last() != before {
					t.Fatalf("rejected Observe(%s) moved the clock from %s to %s", remote, before, c.Last())
				}
				return
			}
			if remote.WallMS()-pt > skew.Milliseconds() {
				t.Fatalf("Observe(%s) accepted although %dms ahead of physical %d (max %s)", remote, remote.WallMS()-pt, pt, skew)
			}
			high = max(high, remote)
		}
		for len(prog) > 0 && len(prog) < 4096 {
			op := prog[0] % 4
			prog = prog[1:]
			switch op {
			case 0:
				h := c.Now()
				if h <= high {
					t.Fatalf("Now() = %s, not after %s", h, high)
				}
				high = h
			case 1:
				var b [8]byte
				prog = prog[copy(b[:], prog):]
				observe(core.HLC(binary.BigEndian.Uint64(b[:])))
			case 2:
				var b [2]byte
				prog = prog[copy(b[:], prog):]
				phys.Add(time.Duration(int16(binary.BigEndian.Uint16(b[:]))) * time.Millisecond)
			case 3:
				var b [5]byte
				prog = prog[copy(b[:], prog):]
				delta := int64(int32(binary.BigEndian.Uint32(b[:4])))
				observe(core.MakeHLC(phys.MS()+delta, uint16(b[4])<<8|uint16(b[4])))
			}
			if c.Last() < high {
				t.Fatalf("Last() = %s, behind %s", c.Last(), high)
			}
		}
	})
}
