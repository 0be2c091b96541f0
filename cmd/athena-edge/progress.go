package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progress draws a one-line progress bar on a terminal and nothing when
// the output is not one (piped or redirected). Not safe for concurrent use.
type progress struct {
	w     io.Writer
	label string
	total int64
	last  time.Time
	on    bool
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func newProgress(w io.Writer, label string, total int64) *progress {
	return &progress{w: w, label: label, total: total, on: isTerminal(w)}
}

// set updates the bar to done (of total), at most ten times a second.
func (p *progress) set(done int64) {
	if !p.on || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.draw(done)
}

func (p *progress) draw(done int64) {
	const width = 30
	if p.total <= 0 {
		fmt.Fprintf(p.w, "\r%s %d", p.label, done)
		return
	}
	frac := min(float64(done)/float64(p.total), 1)
	n := int(frac * width)
	fmt.Fprintf(p.w, "\r%s [%s%s] %3.0f%% %d/%d", p.label, strings.Repeat("#", n), strings.Repeat(".", width-n), frac*100, done, p.total)
}

// done finishes the bar.
func (p *progress) done(done int64) {
	if !p.on {
		return
	}
	p.draw(done)
	fmt.Fprintln(p.w)
}
