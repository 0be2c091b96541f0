package edgesync

import (
	"context"
	"sync"

	"github.com/athena-edge/athena-edge/core"
)

// Notifier fans out "new changes were committed" between the connections
// of one or several server processes, so that live edges pull promptly.
// A notification is a hint: losing one only delays an edge until its next
// pull. Implementations must be safe for concurrent use.
type Notifier interface {
	// Notify announces that device committed new changes to project.
	Notify(ctx context.Context, project core.ID, device string) error
	// Subscribe returns a channel that receives a value (coalesced: at most
	// one pending) whenever a device other than exclude commits changes to
	// project, and a function that ends the subscription.
	Subscribe(project core.ID, exclude string) (<-chan struct{}, func())
}

// LocalNotifier is the in-process Notifier, the default of a Server. It is
// safe for concurrent use; its zero value is ready.
type LocalNotifier struct {
	mu   sync.Mutex
	subs map[core.ID]map[*subscription]struct{}
}

type subscription struct {
	exclude string
	ch      chan struct{}
}

var _ Notifier = (*LocalNotifier)(nil)

// Notify wakes every subscriber of project except device's own. It never
// blocks.
func (n *LocalNotifier) Notify(_ context.Context, project core.ID, device string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for s := range n.subs[project] {
		if s.exclude != "" && s.exclude == device {
			continue
		}
		select {
		case s.ch <- struct{}{}:
		default: // one pending wake-up is enough
		}
	}
	return nil
}

// Subscribe implements Notifier.
func (n *LocalNotifier) Subscribe(project core.ID, exclude string) (<-chan struct{}, func()) {
	s := &subscription{exclude: exclude, ch: make(chan struct{}, 1)}
	n.mu.Lock()
	if n.subs == nil {
		n.subs = map[core.ID]map[*subscription]struct{}{}
	}
	if n.subs[project] == nil {
		n.subs[project] = map[*subscription]struct{}{}
	}
	n.subs[project][s] = struct{}{}
	n.mu.Unlock()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			n.mu.Lock()
			defer n.mu.Unlock()
			delete(n.subs[project], s)
			if len(n.subs[project]) == 0 {
				delete(n.subs, project)
			}
		})
	}
}

// wakeAll wakes every subscriber (after notifications may have been lost).
func (n *LocalNotifier) wakeAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, subs := range n.subs {
		for s := range subs {
			select {
			case s.ch <- struct{}{}:
			default:
			}
		}
	}
}
