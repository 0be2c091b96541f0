package native

import (
	"bytes"
	"errors"
	"os"
	"strconv"
)

// CPUShare is how the machine's CPUs spent a stretch of time, in percent
// of all CPU time across all CPUs, from the kernel's counters
// (/proc/stat): busy is everything but idle, I/O wait and steal; steal is
// time the hypervisor ran something else while this machine's virtual
// CPUs were ready to run. It is machine-wide, not this process's: a bench
// figure taken with high steal, or with other work running beside it, says
// as much about the machine as about the code. A CPUShare is a plain
// value, safe to read from any goroutine.
type CPUShare struct {
	BusyPct  float64 `json:"busy_pct"`
	StealPct float64 `json:"steal_pct"`
}

// cpuTimes are the machine's cumulative CPU counters, in clock ticks.
type cpuTimes struct {
	total, idle, steal uint64
}

// errProcStat is returned for a /proc/stat whose first line is not the
// aggregate "cpu" line with at least four counters.
var errProcStat = errors.New("native: /proc/stat: no aggregate cpu line")

// parseProcStat reads the aggregate "cpu" line of /proc/stat: user, nice,
// system, idle, iowait, irq, softirq, steal, then guest and guest_nice.
// The guest counters are already included in user and nice, so the total
// is the sum of the first eight; kernels that print fewer count the
// missing ones as zero. idle includes iowait.
func parseProcStat(b []byte) (cpuTimes, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return cpuTimes{}, errProcStat
	}
	var v [8]uint64
	for i := 1; i < len(f) && i <= len(v); i++ {
		n, err := strconv.ParseUint(string(f[i]), 10, 64)
		if err != nil {
			return cpuTimes{}, errProcStat
		}
		v[i-1] = n
	}
	var t cpuTimes
	for _, n := range v {
		if t.total+n < t.total {
			return cpuTimes{}, errProcStat // overflow: not counters
		}
		t.total += n
	}
	t.idle, t.steal = v[3]+v[4], v[7]
	return t, nil
}

// share returns how the time between a and b was spent; nil if no time
// passed or the counters went backwards.
func (a cpuTimes) share(b cpuTimes) *CPUShare {
	if b.total <= a.total || b.idle < a.idle || b.steal < a.steal {
		return nil
	}
	total := float64(b.total - a.total)
	idle, steal := float64(b.idle-a.idle), float64(b.steal-a.steal)
	busy := max(total-idle-steal, 0)
	return &CPUShare{BusyPct: round1(100 * busy / total), StealPct: round1(100 * steal / total)}
}

func round1(x float64) float64 { return float64(int64(x*10+0.5)) / 10 }

// cpuMeter measures a stretch of time's CPUShare. Its zero value, or one
// started where /proc/stat cannot be read, measures nothing.
type cpuMeter struct {
	start cpuTimes
	ok    bool
}

func startCPUMeter() cpuMeter {
	t, err := readProcStat()
	return cpuMeter{start: t, ok: err == nil}
}

// stop returns the share since the meter started, or nil.
func (m cpuMeter) stop() *CPUShare {
	if !m.ok {
		return nil
	}
	t, err := readProcStat()
	if err != nil {
		return nil
	}
	return m.start.share(t)
}

func readProcStat() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	return parseProcStat(b)
}
