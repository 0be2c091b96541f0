package core

import (
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"
)

// HLC is a hybrid logical clock timestamp: Unix milliseconds in the high 48
// bits and a logical counter in the low 16. HLCs compare as integers, and
// every store keeps them in a 64-bit integer column.
type HLC uint64

// MakeHLC builds an HLC from wall milliseconds and a logical counter.
func MakeHLC(wallMS int64, logical uint16) HLC { return HLC(uint64(wallMS)<<16 | uint64(logical)) }

// WallMS is the physical part of h, in Unix milliseconds.
func (h HLC) WallMS() int64 { return int64(h >> 16) }

// Logical is the counter part of h.
func (h HLC) Logical() uint16 { return uint16(h) }

// Time is the physical part of h as a time.
func (h HLC) Time() time.Time { return time.UnixMilli(h.WallMS()).UTC() }

func (h HLC) String() string {
	return strconv.FormatInt(h.WallMS(), 10) + "." + strconv.Itoa(int(h.Logical()))
}

// Stamp orders writes to one record across devices: by HLC, then by device
// ID as a deterministic tie-break. The zero Stamp is older than every other.
type Stamp struct {
	HLC    HLC    `json:"hlc"`
	Device string `json:"device"`
}

// Compare returns -1, 0 or +1 as s is older than, equal to or newer than o.
func (s Stamp) Compare(o Stamp) int {
	switch {
	case s.HLC < o.HLC:
		return -1
	case s.HLC > o.HLC:
		return 1
	case s.Device < o.Device:
		return -1
	case s.Device > o.Device:
		return 1
	}
	return 0
}

// After reports whether s is newer than o.
func (s Stamp) After(o Stamp) bool { return s.Compare(o) > 0 }

// DefaultMaxSkew is how far in the future a remote HLC may be before
// [Clock.Observe] rejects it.
const DefaultMaxSkew = 60 * time.Second

// ClockConfig configures a [Clock]. The zero value uses time.Now and
// DefaultMaxSkew.
type ClockConfig struct {
	Now     func() time.Time // physical time source; nil means time.Now
	MaxSkew time.Duration    // remote timestamps further ahead are rejected; 0 means DefaultMaxSkew
}

// Clock issues hybrid logical clock timestamps (Kulkarni et al., 2014). It
// never goes backwards, even when the physical clock does, and it advances
// past every remote timestamp it observes. A Clock is safe for concurrent
// use.
type Clock struct {
	now     func() time.Time
	maxSkew time.Duration

	mu   sync.Mutex
	last HLC
}

// NewClock returns a clock configured by cfg.
func NewClock(cfg ClockConfig) *Clock {
	c := &Clock{now: cfg.Now, maxSkew: cfg.MaxSkew}
	if c.now == nil {
		c.now = time.Now
	}
	if c.maxSkew <= 0 {
		c.maxSkew = DefaultMaxSkew
	}
	return c
}

// PhysicalNow returns the clock's physical time source's current time.
func (c *Clock) PhysicalNow() time.Time { return c.now() }

// Now returns a timestamp greater than every timestamp the clock has issued
// or observed.
func (c *Clock) Now() HLC {
	pt := c.now().UnixMilli()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = next(c.last, pt)
	return c.last
}

func next(last HLC, pt int64) HLC {
	if pt > last.WallMS() {
		return MakeHLC(pt, 0)
	}
	if last.Logical() == 0xffff {
		return MakeHLC(last.WallMS()+1, 0)
	}
	return last + 1
}

// SkewError reports a remote timestamp too far ahead of the local clock.
type SkewError struct {
	Remote HLC
	Ahead  time.Duration
	Max    time.Duration
}

func (e *SkewError) Error() string {
	return fmt.Sprintf("hlc: remote timestamp %s is %s ahead of the local clock (max %s)", e.Remote, e.Ahead, e.Max)
}

// Unwrap makes a SkewError match ErrInvalid.
func (e *SkewError) Unwrap() error { return ErrInvalid }

// Observe advances the clock past a remote timestamp, so that every later
// local write orders after it. A timestamp more than the configured max skew
// ahead of physical time is rejected with a *SkewError and not observed:
// one device with a wild clock cannot drag every replica into the future.
func (c *Clock) Observe(remote HLC) error {
	pt := c.now().UnixMilli()
	if ahead := remote.WallMS() - pt; ahead > c.maxSkew.Milliseconds() { // in ms: in ns it would overflow
		return &SkewError{Remote: remote, Ahead: time.Duration(min(ahead, math.MaxInt64/int64(time.Millisecond))) * time.Millisecond, Max: c.maxSkew}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if remote > c.last {
		c.last = remote
	}
	return nil
}

// Last returns the latest timestamp issued or observed.
func (c *Clock) Last() HLC {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}
