package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
	edgesync "github.com/athena-edge/athena-edge/sync"
)

// projectName is the project a tab works in: the CLI's implicit default
// project, so that a CLI edge and a tab share memories without setup. The
// path and description are the CLI's, so both sides write the same record.
const (
	projectName        = core.DefaultProjectName
	projectPath        = "(default)"
	projectDescription = "memories made outside any project"
)

// edgeConfig configures an edge. Device and Persist are required.
type edgeConfig struct {
	Device    string // this tab's device ID (generated once per browser profile)
	Snapshot  []byte // the store saved by the last Persist, or empty
	SyncURL   string // ws://host/v1/sync; empty: no sync
	TicketURL string // http://host/v1/demo/ticket
	// Persist saves a snapshot of the whole store (IndexedDB in the
	// browser). It is called after every local write before the write is
	// acknowledged to the page, and, debounced, after sync writes.
	Persist func(ctx context.Context, snapshot []byte) error
	// Changed is told that the store or the sync state changed, so the
	// page can refresh. It must not block.
	Changed    func()
	HTTPClient *http.Client
	Debounce   time.Duration // of background persistence (default 250 ms)
}

// trackedStore is a memstore that counts its commits, so that the edge
// knows when it has unsaved writes, whoever made them (the page, or sync
// applying an ack or a pull).
type trackedStore struct {
	*memstore.Store
	gen    atomic.Uint64
	commit func()
}

func (s *trackedStore) Update(ctx context.Context, fn func(core.WriteTx) error) error {
	err := s.Store.Update(ctx, fn)
	if err == nil {
		s.gen.Add(1)
		s.commit()
	}
	return err
}

// edge is a browser tab's replica: core.DB over memstore, persisted by
// snapshots, synced by an edgesync.Client. Safe for concurrent use.
type edge struct {
	cfg     edgeConfig
	store   *trackedStore
	db      *core.DB
	project core.Project
	client  *edgesync.Client
	dirty   chan struct{}

	saveMu   sync.Mutex // serializes snapshots
	savedGen atomic.Uint64
	saveErr  atomic.Pointer[string]

	writeMu sync.Mutex         // serializes own writes, so lastSeq stays exact
	lastSeq map[core.ID]uint64 // memory → seq of this device's newest change to it

	mu       sync.Mutex // guards the sync state below
	online   bool
	cancel   context.CancelFunc
	run      uint64
	state    string // offline, connecting, connected, retrying, stopped, disabled
	lastErr  string
	lastSync time.Time
}

func openEdge(ctx context.Context, cfg edgeConfig) (*edge, error) {
	if err := core.CheckText("device", cfg.Device, 128, true); err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	if cfg.Persist == nil {
		return nil, errors.New("open: a persist function is required")
	}
	if cfg.Changed == nil {
		cfg.Changed = func() {}
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = 250 * time.Millisecond
	}
	ms := memstore.New()
	if len(cfg.Snapshot) > 0 {
		var err error
		if ms, err = memstore.Load(cfg.Snapshot); err != nil {
			return nil, fmt.Errorf("open: the saved store is unreadable: %w", err)
		}
		cfg.Snapshot = nil
	}
	e := &edge{cfg: cfg, dirty: make(chan struct{}, 1), lastSeq: map[core.ID]uint64{}, state: "offline"}
	e.store = &trackedStore{Store: ms, commit: e.markDirty}
	e.db = core.New(e.store, core.Config{Device: cfg.Device, Embedder: core.NewHashEmbedder(core.HashEmbedderConfig{})})
	e.savedGen.Store(e.store.gen.Load())

	p, err := e.db.ProjectByName(ctx, projectName)
	if errors.Is(err, core.ErrNotFound) {
		p, err = e.db.CreateProject(ctx, core.Project{Name: projectName, Path: projectPath, Description: projectDescription})
	}
	if err != nil {
		return nil, fmt.Errorf("open: project %s: %w", projectName, err)
	}
	e.project = p
	if err := e.indexOwnChanges(ctx); err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	if err := e.flush(ctx); err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	if cfg.SyncURL == "" {
		e.state = "disabled"
	} else {
		e.client = edgesync.NewClient(edgesync.ClientConfig{
			DB: e.db, ServerURL: cfg.SyncURL, TicketFunc: e.ticket,
			// Pushes follow Kick, which the edge calls once a write is
			// saved; polling would push writes not yet persisted.
			PollInterval: time.Hour,
			MinBackoff:   250 * time.Millisecond, MaxBackoff: 5 * time.Second,
			Logger:   slog.New(&stateHandler{e: e}),
			Progress: func(edgesync.Progress) { e.setState("connected", "") },
		})
	}
	go e.saver()
	return e, nil
}

// indexOwnChanges records, for every memory, the seq of this device's
// newest change to it (one scan of the log, at open).
func (e *edge) indexOwnChanges(ctx context.Context) error {
	const page = 512
	for after := int64(0); ; {
		cs, err := e.db.Changes(ctx, after, page, "")
		if err != nil {
			return err
		}
		for _, c := range cs {
			if c.Device == e.cfg.Device && strings.HasPrefix(string(c.Kind), "memory.") {
				e.lastSeq[c.EntityID] = max(e.lastSeq[c.EntityID], c.Seq)
			}
			after = c.Pos
		}
		if len(cs) < page {
			return nil
		}
	}
}

func (e *edge) markDirty() {
	select {
	case e.dirty <- struct{}{}:
	default:
	}
}

// saver persists background writes (acks, pulls), debounced.
func (e *edge) saver() {
	for range e.dirty {
		time.Sleep(e.cfg.Debounce)
		if err := e.flush(context.Background()); err != nil {
			continue
		}
		e.cfg.Changed()
	}
}

// flush saves the store if it changed since the last save.
func (e *edge) flush(ctx context.Context) error {
	e.saveMu.Lock()
	defer e.saveMu.Unlock()
	gen := e.store.gen.Load()
	if gen == e.savedGen.Load() {
		return nil
	}
	b, err := e.store.Snapshot()
	if err == nil {
		err = e.cfg.Persist(ctx, b)
	}
	if err != nil {
		msg := "could not save the local store: " + err.Error()
		e.saveErr.Store(&msg)
		return fmt.Errorf("save: %w", err)
	}
	e.saveErr.Store(nil)
	e.savedGen.Store(gen)
	return nil
}

// ---- the page's operations ----

type rememberReq struct {
	Content string   `json:"content"`
	Tags    []string `json:"tags"`
	Type    string   `json:"type"`
}

// memoryView is a memory as the page shows it.
type memoryView struct {
	ID        core.ID  `json:"id"`
	Content   string   `json:"content"`
	Type      string   `json:"type"`
	Tags      []string `json:"tags"`
	Device    string   `json:"device"`     // the device that last wrote the memory's fields
	Mine      bool     `json:"mine"`       // written by this tab
	CreatedAt string   `json:"created_at"` // RFC 3339, UTC
	Sync      string   `json:"sync"`       // pending, synced, rejected (own); received (from another device)
	Reason    string   `json:"reason,omitempty"`
}

// remember stores a memory, saves the store, then asks sync to push it.
func (e *edge) remember(ctx context.Context, r rememberReq) (memoryView, error) {
	typ := core.MemoryType(r.Type)
	if typ == "" {
		typ = core.TypeFact
	}
	tags := slices.DeleteFunc(slices.Clone(r.Tags), func(s string) bool { return strings.TrimSpace(s) == "" })
	m := core.Memory{ProjectID: e.project.ID, Content: r.Content, MemoryType: typ, Domain: "memory", Tags: tags,
		Usefulness: 0.5, Confidence: 1}
	e.writeMu.Lock()
	m, err := e.db.Remember(ctx, m)
	if err == nil {
		var seq uint64
		seq, err = e.ownLastSeq(ctx)
		e.lastSeq[m.ID] = seq
	}
	e.writeMu.Unlock()
	if err != nil {
		return memoryView{}, err
	}
	// Saved before sync may push it: a change the server holds but the
	// tab lost would make the tab's device sequence restart below the
	// server's, which sync refuses (ErrDeviceMismatch).
	if err := e.flush(ctx); err != nil {
		return memoryView{}, err
	}
	if e.client != nil {
		e.client.Kick()
	}
	e.cfg.Changed()
	st, _ := edgesync.ReadStatus(ctx, e.db)
	return e.view(m, e.syncInfo(st)), nil
}

func (e *edge) ownLastSeq(ctx context.Context) (uint64, error) {
	var seq uint64
	err := e.db.Backend().View(ctx, func(r core.ReadTx) error {
		var err error
		seq, err = r.LastSeq(ctx, e.cfg.Device)
		return err
	})
	return seq, err
}

type recallReq struct {
	Query string `json:"query"`
	K     int    `json:"k"`
}

type hitView struct {
	memoryView
	Hybrid   float64       `json:"hybrid"`
	Semantic float64       `json:"semantic"`
	Keyword  float64       `json:"keyword"`
	Explain  *core.Explain `json:"explain"`
}

type recallResult struct {
	TookMS float64   `json:"took_ms"`
	Hits   []hitView `json:"hits"`
}

// recall runs core's hybrid search over the local store, with the
// explanation. It does not record accesses: a recall makes no change to
// sync.
func (e *edge) recall(ctx context.Context, r recallReq) (recallResult, error) {
	if r.K <= 0 {
		r.K = 5
	}
	start := time.Now()
	hits, err := e.db.Search(ctx, core.Query{ProjectID: e.project.ID, Text: r.Query, K: r.K, Explain: true})
	took := time.Since(start)
	if err != nil {
		return recallResult{}, err
	}
	st, _ := edgesync.ReadStatus(ctx, e.db)
	si := e.syncInfo(st)
	out := recallResult{TookMS: float64(took.Microseconds()) / 1000, Hits: make([]hitView, 0, len(hits))}
	for _, h := range hits {
		out.Hits = append(out.Hits, hitView{memoryView: e.view(h.Memory, si), Hybrid: h.Hybrid, Semantic: h.Semantic,
			Keyword: h.Keyword, Explain: h.Explain})
	}
	return out, nil
}

type listResult struct {
	Total    int          `json:"total"`
	Memories []memoryView `json:"memories"`
}

// list returns the newest memories the tab holds, its own and those it
// pulled, with their sync state.
func (e *edge) list(ctx context.Context, limit int) (listResult, error) {
	if limit <= 0 {
		limit = 50
	}
	all, err := e.db.Memories(ctx, core.MemoryFilter{ProjectID: e.project.ID, Newest: true})
	if err != nil {
		return listResult{}, err
	}
	st, _ := edgesync.ReadStatus(ctx, e.db)
	si := e.syncInfo(st)
	out := listResult{Total: len(all), Memories: make([]memoryView, 0, min(limit, len(all)))}
	for _, m := range all[:min(limit, len(all))] {
		out.Memories = append(out.Memories, e.view(m, si))
	}
	return out, nil
}

// syncInfo is what view needs from the sync status: the acknowledged seq
// and the rejected changes, against the one server the tab syncs with.
type syncInfo struct {
	acked    uint64
	rejected map[uint64]string
}

func (e *edge) syncInfo(st edgesync.LocalStatus) syncInfo {
	si := syncInfo{rejected: map[uint64]string{}}
	for _, s := range st.Servers {
		si.acked = max(si.acked, s.Acked)
		for _, d := range s.Rejected {
			si.rejected[d.Seq] = d.Reason
		}
	}
	return si
}

func (e *edge) view(m core.Memory, si syncInfo) memoryView {
	v := memoryView{ID: m.ID, Content: m.Content, Type: string(m.MemoryType), Tags: m.Tags, Device: m.Version.Device,
		Mine: m.Version.Device == e.cfg.Device, CreatedAt: m.CreatedAt.UTC().Format(time.RFC3339)}
	if v.Tags == nil {
		v.Tags = []string{}
	}
	e.writeMu.Lock()
	seq, own := e.lastSeq[m.ID]
	e.writeMu.Unlock()
	switch {
	case !own:
		v.Sync = "received"
	case si.rejected[seq] != "":
		v.Sync, v.Reason = "rejected", si.rejected[seq]
	case seq <= si.acked:
		v.Sync = "synced"
	default:
		v.Sync = "pending"
	}
	return v
}

// statusView is the sync panel.
type statusView struct {
	Device    string                `json:"device"`
	Project   string                `json:"project"`
	Online    bool                  `json:"online"`
	State     string                `json:"state"`
	Error     string                `json:"error,omitempty"`
	SaveError string                `json:"save_error,omitempty"`
	LastSync  string                `json:"last_sync,omitempty"`
	LastSeq   uint64                `json:"last_seq"` // own changes made
	Acked     uint64                `json:"acked"`    // ... acknowledged by the server
	Pending   uint64                `json:"pending"`  // ... not yet
	Applied   uint64                `json:"applied"`  // acknowledged and not rejected
	Rejected  []edgesync.DeadLetter `json:"rejected"`
	Pulled    int64                 `json:"pulled"` // changes received from other devices
	Memories  int                   `json:"memories"`
	Snapshot  int                   `json:"snapshot_bytes"`
}

func (e *edge) status(ctx context.Context) (statusView, error) {
	st, err := edgesync.ReadStatus(ctx, e.db)
	if err != nil {
		return statusView{}, err
	}
	e.mu.Lock()
	v := statusView{Device: e.cfg.Device, Project: e.project.Name, Online: e.online, State: e.state, Error: e.lastErr,
		LastSeq: st.LastSeq, Pending: st.LastSeq, Rejected: []edgesync.DeadLetter{}}
	if !e.lastSync.IsZero() {
		v.LastSync = e.lastSync.UTC().Format(time.RFC3339)
	}
	e.mu.Unlock()
	if p := e.saveErr.Load(); p != nil {
		v.SaveError = *p
	}
	for _, s := range st.Servers {
		v.Acked, v.Pending, v.Pulled = s.Acked, s.Pending, s.Pulled
		v.Rejected = append(v.Rejected, s.Rejected...)
	}
	v.Applied = v.Acked - min(v.Acked, uint64(len(v.Rejected)))
	ms, err := e.db.Memories(ctx, core.MemoryFilter{ProjectID: e.project.ID})
	if err != nil {
		return statusView{}, err
	}
	v.Memories = len(ms)
	return v, nil
}

// ---- sync ----

// setOnline starts sync (edgesync.Client.Watch: push, pull, then stay
// connected for pokes) or stops it. The page calls it on load and on the
// window's online and offline events.
func (e *edge) setOnline(on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.online = on
	if on {
		e.startLocked()
	} else {
		e.stopLocked()
		if e.client != nil {
			e.state, e.lastErr = "offline", ""
		}
	}
	go e.cfg.Changed()
}

// syncNow restarts sync at once (skipping a backoff, or after a
// permanent error).
func (e *edge) syncNow() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stopLocked()
	if e.online {
		e.startLocked()
	}
}

func (e *edge) startLocked() {
	if e.client == nil || e.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.run++
	run := e.run
	e.state, e.lastErr = "connecting", ""
	go func() {
		err := e.client.Watch(ctx)
		e.mu.Lock()
		if e.run == run {
			e.cancel = nil
			if ctx.Err() == nil {
				e.state, e.lastErr = "stopped", err.Error()
			}
		}
		e.mu.Unlock()
		cancel()
		e.cfg.Changed()
	}()
}

func (e *edge) stopLocked() {
	if e.cancel != nil {
		e.cancel()
		e.cancel = nil
		e.run++
	}
}

func (e *edge) setState(state, errText string) {
	e.mu.Lock()
	if e.cancel == nil { // a stopped run reporting late
		e.mu.Unlock()
		return
	}
	changed := e.state != state || e.lastErr != errText
	e.state, e.lastErr = state, errText
	if state == "connected" {
		e.lastSync = time.Now()
	}
	e.mu.Unlock()
	if changed {
		e.cfg.Changed()
	}
}

// ticket fetches a single-use ticket from the serve's demo endpoint. Its
// failures are worded for the page and classified for edgesync.Retryable:
// a network failure or a server error is retried, a refusal is not.
func (e *edge) ticket(ctx context.Context) (string, error) {
	e.setState("connecting", "")
	// Everything the page saved must be on disk before a connection can
	// push it (see remember).
	if err := e.flush(ctx); err != nil {
		return "", fmt.Errorf("%w: %v", edgesync.ErrUnavailable, err)
	}
	body, _ := json.Marshal(map[string]string{"device": e.cfg.Device})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.cfg.TicketURL, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("%w: %v", edgesync.ErrProtocol, err)
	}
	req.Header.Set("Content-Type", "application/json")
	hc := e.cfg.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("%w: the server is unreachable (%v)", edgesync.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusNotFound:
		return "", fmt.Errorf("%w: the server's demo endpoints are off (start it with athena-edge serve --demo)", edgesync.ErrForbidden)
	case resp.StatusCode == http.StatusForbidden:
		return "", fmt.Errorf("%w: %s", edgesync.ErrForbidden, strings.TrimSpace(string(b)))
	case resp.StatusCode == http.StatusTooManyRequests:
		return "", fmt.Errorf("%w: HTTP 429", edgesync.ErrRateLimited)
	case resp.StatusCode >= 500:
		return "", fmt.Errorf("%w: HTTP %d", edgesync.ErrUnavailable, resp.StatusCode)
	default:
		return "", fmt.Errorf("%w: HTTP %d: %s", edgesync.ErrUnauthorized, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	var out struct {
		Ticket string `json:"ticket"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Ticket == "" {
		return "", fmt.Errorf("%w: bad ticket response", edgesync.ErrProtocol)
	}
	e.setState("connected", "")
	return out.Ticket, nil
}

// stateHandler turns the sync client's log (it logs only when Watch loses
// its connection and retries) into the edge's sync state.
type stateHandler struct{ e *edge }

func (h *stateHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *stateHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *stateHandler) WithGroup(string) slog.Handler            { return h }
func (h *stateHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return nil
	}
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			msg = a.Value.String()
			return false
		}
		return true
	})
	h.e.setState("retrying", msg)
	return nil
}
