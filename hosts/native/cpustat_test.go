package native

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		want     cpuTimes
		err      bool
	}{
		{"linux 6", "cpu  100 2 30 400 5 6 7 8 9 10\ncpu0 50 1 15 200 2 3 3 4 0 0\n",
			cpuTimes{total: 558, idle: 405, steal: 8}, false},
		{"no guest counters", "cpu 1 2 3 4 5 6 7 8\n", cpuTimes{total: 36, idle: 9, steal: 8}, false},
		{"old kernel without steal", "cpu 10 0 10 80 0 0 0\n", cpuTimes{total: 100, idle: 80}, false},
		{"four counters", "cpu 10 0 10 80", cpuTimes{total: 100, idle: 80}, false},
		{"a per-cpu line first", "cpu0 1 2 3 4 5 6 7 8\n", cpuTimes{}, true},
		{"too few counters", "cpu 1 2 3\n", cpuTimes{}, true},
		{"not a number", "cpu 1 2 x 4 5 6 7 8\n", cpuTimes{}, true},
		{"negative", "cpu 1 2 -3 4 5 6 7 8\n", cpuTimes{}, true},
		{"overflow", "cpu 18446744073709551615 1 0 0 0 0 0 0\n", cpuTimes{}, true},
		{"empty", "", cpuTimes{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseProcStat([]byte(tc.in))
			if tc.err {
				require.ErrorIs(t, err, errProcStat)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestCPUShare(t *testing.T) {
	t.Parallel()
	a := cpuTimes{total: 1000, idle: 600, steal: 10}
	for _, tc := range []struct {
		name string
		b    cpuTimes
		want *CPUShare
	}{
		{"busy and steal", cpuTimes{total: 2000, idle: 900, steal: 110}, &CPUShare{BusyPct: 60, StealPct: 10}},
		{"idle", cpuTimes{total: 1300, idle: 900, steal: 10}, &CPUShare{BusyPct: 0, StealPct: 0}},
		{"rounded to a tenth", cpuTimes{total: 1003, idle: 601, steal: 10}, &CPUShare{BusyPct: 66.7, StealPct: 0}},
		{"no time passed", a, nil},
		{"counters went back", cpuTimes{total: 2000, idle: 500, steal: 10}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, a.share(tc.b))
		})
	}
}

func TestCPUMeter(t *testing.T) {
	t.Parallel()
	assert.Nil(t, cpuMeter{}.stop(), "the zero meter measures nothing")
	m := startCPUMeter()
	if _, err := os.ReadFile("/proc/stat"); err != nil {
		// Not Linux: the meter measures nothing, and bench omits the shares.
		assert.False(t, m.ok)
		assert.Nil(t, m.stop())
		return
	}
	require.True(t, m.ok, "/proc/stat is readable, so the meter starts")
	for { // read until the kernel's tick counters move (a tick is 1–10 ms)
		if sh := m.stop(); sh != nil {
			assert.GreaterOrEqual(t, sh.BusyPct, 0.0)
			assert.LessOrEqual(t, sh.BusyPct+sh.StealPct, 100.0)
			return
		}
	}
}

// FuzzParseProcStat: no input panics, and what parses is consistent.
func FuzzParseProcStat(f *testing.F) {
	f.Add([]byte("cpu  100 2 30 400 5 6 7 8 9 10\n"))
	f.Add([]byte("cpu 1 2 3 4\n"))
	f.Add([]byte("cpu0 1 2 3 4 5\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseProcStat(b)
		if err != nil {
			return
		}
		if c.idle+c.steal < c.idle || c.idle+c.steal > c.total {
			t.Fatalf("idle %d + steal %d exceed total %d", c.idle, c.steal, c.total)
		}
	})
}
