package edgesync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/coder/websocket"
)

// Metadata keys on the edge's database. <server> is the server's ID from
// its welcome, so cursors survive a change of URL and restart from zero
// against a different (or reset) server database.
const (
	metaServers = "sync/servers/" // + server → serverInfo JSON
	metaAcked   = "sync/acked/"   // + server → last acknowledged own seq
	metaAckPos  = "sync/ackpos/"  // + server → local log position of that change (scan hint)
	metaPulled  = "sync/pulled/"  // + server → server log cursor of the last pull
	metaPulledN = "sync/pulledn/" // + server → number of changes pulled
	metaDead    = "sync/dead/"    // + server + "/" + %020d seq → DeadLetter JSON
)

// Client defaults.
const (
	DefaultMaxRetries   = 5
	DefaultMinBackoff   = 100 * time.Millisecond
	DefaultMaxBackoff   = 30 * time.Second
	DefaultPollInterval = time.Second
	// DefaultPipeline is how many push batches a client keeps in flight.
	DefaultPipeline = 2
	// DefaultBatchBytes caps a push batch's estimated size: about 130
	// memories of 768 floats. Each batch is one database transaction on
	// the server, so a larger batch spreads its fixed costs (round trips,
	// the commit's flush) over more changes, and a smaller one is acked
	// sooner. Against PostgreSQL on loopback, 512 KiB drained a backlog
	// about 1.25× as fast as 128 KiB, with ack p99 of 0.1–0.2 s
	// (docs/BENCHMARKS.md, "Sync").
	DefaultBatchBytes = 512 << 10
)

// ClientConfig configures a [Client]. DB and ServerURL are required, plus
// Token or TicketFunc; every other zero field takes its Default* value.
type ClientConfig struct {
	// DB is the edge database. Its Device must be the token's device, and
	// its store must implement core.MetaTx.
	DB *core.DB
	// ServerURL is the sync endpoint, ws://host/v1/sync or wss://...
	ServerURL string
	// Token is the device token (sent in an Authorization header; on js,
	// exchanged for a ticket first).
	Token string
	// TicketFunc returns a fresh single-use ticket; used when Token is
	// empty (browsers that keep the token elsewhere).
	TicketFunc func(ctx context.Context) (string, error)
	// HTTPClient dials the handshake (TLS roots, proxies). Nil means
	// http.DefaultClient.
	HTTPClient *http.Client
	// BatchSize caps changes per push (DefaultBatchSize, at most the
	// server's MaxBatch).
	BatchSize int
	// BatchBytes caps a push's estimated size (DefaultBatchBytes, at most
	// the server's message limit minus 64 KiB).
	BatchBytes int
	// MaxRetries is how often Sync retries a retryable failure
	// (DefaultMaxRetries; negative: never). Watch retries forever.
	MaxRetries int
	// MinBackoff and MaxBackoff bound the jittered exponential backoff
	// between retries (DefaultMinBackoff, DefaultMaxBackoff).
	MinBackoff, MaxBackoff time.Duration
	// PollInterval is how often Watch looks for new local changes when
	// nobody calls Kick (DefaultPollInterval).
	PollInterval time.Duration
	// PingInterval is how often Watch pings an idle connection
	// (DefaultPingInterval; no-op on js).
	PingInterval time.Duration
	// Logger receives reconnects and failures from Watch. Nil discards.
	Logger *slog.Logger
	// Progress, if set, is called after every acknowledged batch and every
	// pulled batch, from the goroutine running Sync or Watch.
	Progress func(Progress)
	// Pipeline is how many push batches may be in flight (sent, not yet
	// acknowledged) at once (DefaultPipeline; 1 sends the next batch only
	// after the previous ack). The server answers a connection's batches in
	// order; acks are matched by batch ID, and after a refused batch (a rate
	// limit, a sequence gap) the rest of the window is discarded and
	// resent from the server's position.
	Pipeline int
	// TestHooks are fault-injection points for tests and benchmarks; nil
	// in production.
	TestHooks *TestHooks
}

// TestHooks are called from the goroutine running Sync or Watch. They exist
// for tests (kill -9 between two steps) and benchmarks (ack latencies);
// leave them nil in production.
type TestHooks struct {
	// AfterAck runs when an ack has been received and checked, before the
	// edge records it. lastSeq is the batch's last sequence number.
	AfterAck func(lastSeq uint64)
	// Acked runs after an ack is recorded: the batch's size and the time
	// from its send to its ack.
	Acked func(changes int, latency time.Duration)
	// Write, if set, writes every push and pull frame instead of the
	// client: it may call write any number of times (a duplicate), later
	// (reordered behind the next frame), or not at all (lost). write is
	// bound to the connection the frame was meant for and is safe to call
	// from another goroutine; it fails once that connection is gone.
	Write func(t MsgType, frame []byte, write func([]byte) error) error
}

// Progress reports a sync's advance, for progress bars.
type Progress struct {
	Pushed    int // changes acknowledged so far in this push run
	PushTotal int // changes pending when the push run started
	Pulled    int // changes pulled so far
	More      bool
}

// Stats counts what a Sync or Watch did.
type Stats struct {
	Pushed        int   `json:"pushed"`     // own changes acknowledged
	Applied       int   `json:"applied"`    // ... of which the server applied
	Superseded    int   `json:"superseded"` // ... had no effect (a newer write won)
	Rejected      int   `json:"rejected"`   // ... were rejected (see the dead letters)
	Duplicates    int   `json:"duplicates"` // ... the server already had
	Pulled        int   `json:"pulled"`     // changes pulled from the server
	PulledApplied int   `json:"pulled_applied"`
	Batches       int   `json:"batches"`
	Retries       int   `json:"retries"`
	BytesSent     int64 `json:"bytes_sent"`
	BytesReceived int64 `json:"bytes_received"`
	PushBytes     int64 `json:"push_bytes"` // bytes of push frames
}

// BytesPerChange is the average size on the wire of a pushed change.
func (s Stats) BytesPerChange() float64 {
	if s.Pushed == 0 {
		return 0
	}
	return float64(s.PushBytes) / float64(s.Pushed)
}

func (s *Stats) add(o Stats) {
	s.Pushed += o.Pushed
	s.Applied += o.Applied
	s.Superseded += o.Superseded
	s.Rejected += o.Rejected
	s.Duplicates += o.Duplicates
	s.Pulled += o.Pulled
	s.PulledApplied += o.PulledApplied
	s.Batches += o.Batches
	s.Retries += o.Retries
	s.BytesSent += o.BytesSent
	s.BytesReceived += o.BytesReceived
	s.PushBytes += o.PushBytes
}

// Client syncs one edge database with one server. It is safe for
// concurrent use: Sync and Watch calls are serialized (one connection at a
// time); Status and Kick may be called at any time.
type Client struct {
	cfg  ClientConfig
	db   *core.DB
	url  string
	log  *slog.Logger
	kick chan struct{}
	ids  atomic.Uint64
	run  sync.Mutex
}

// NewClient returns a client for cfg. It does no I/O. It panics if cfg.DB
// is nil, a programming error; a bad URL is reported by Sync.
func NewClient(cfg ClientConfig) *Client {
	if cfg.DB == nil {
		panic("edgesync: NewClient: ClientConfig.DB is required")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = DefaultMaxRetries
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	if cfg.Pipeline <= 0 {
		cfg.Pipeline = DefaultPipeline
	}
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = DefaultBatchBytes
	}
	c := &Client{cfg: cfg, db: cfg.DB, url: cfg.ServerURL, log: cfg.Logger, kick: make(chan struct{}, 1)}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c.ids.Store(rand.Uint64() >> 12) // batch ids never repeat across clients' lifetimes in practice
	return c
}

func (c *Client) httpClient() *http.Client {
	if c.cfg.HTTPClient != nil {
		return c.cfg.HTTPClient
	}
	return http.DefaultClient
}

// Kick asks a running Watch to push now (call it after local writes). It
// never blocks.
func (c *Client) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *Client) checkConfig() error {
	u, err := url.Parse(c.url)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return fmt.Errorf("edgesync: %w: server url must be ws:// or wss://", core.ErrInvalid)
	}
	if c.cfg.Token == "" && c.cfg.TicketFunc == nil {
		return fmt.Errorf("edgesync: %w: a token or a ticket func is required", core.ErrInvalid)
	}
	return nil
}

// Sync connects, pushes until the outbox is empty, pulls until caught up,
// and returns what it did. Retryable failures (see [Retryable]) are retried
// up to MaxRetries times with backoff, resuming from the durable cursors;
// the returned Stats cover every attempt.
func (c *Client) Sync(ctx context.Context) (Stats, error) {
	if err := c.checkConfig(); err != nil {
		return Stats{}, err
	}
	c.run.Lock()
	defer c.run.Unlock()
	var total Stats
	for attempt := 0; ; attempt++ {
		var st Stats
		err := c.syncOnce(ctx, &st)
		total.add(st)
		if err == nil {
			return total, nil
		}
		if ctx.Err() != nil {
			return total, fmt.Errorf("edgesync: sync: %w", context.Cause(ctx))
		}
		if !Retryable(err) || c.cfg.MaxRetries < 0 || attempt >= c.cfg.MaxRetries {
			return total, err
		}
		total.Retries++
		if err := c.backoff(ctx, attempt, err); err != nil {
			return total, err
		}
	}
}

func (c *Client) backoff(ctx context.Context, attempt int, cause error) error {
	d := c.cfg.MinBackoff << min(attempt, 20)
	if d > c.cfg.MaxBackoff || d <= 0 {
		d = c.cfg.MaxBackoff
	}
	var we *Error
	if errors.As(cause, &we) && we.RetryAfter > d {
		d = we.RetryAfter
	}
	d = d/2 + rand.N(d/2+1) // jitter
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("edgesync: %w", context.Cause(ctx))
	case <-t.C:
		return nil
	}
}

func (c *Client) syncOnce(ctx context.Context, st *Stats) error {
	s, err := c.connect(ctx, st)
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.pushAll(ctx); err != nil {
		return err
	}
	if err := s.pullAll(ctx); err != nil {
		return err
	}
	s.closeNormal()
	return nil
}

// Watch syncs like Sync, then stays connected: it pushes when Kick is
// called or every PollInterval finds new local changes, pulls when the
// server pokes, and reconnects with jittered exponential backoff after any
// retryable failure. It returns when ctx ends (with ctx's cause) or on a
// permanent error.
func (c *Client) Watch(ctx context.Context) error {
	if err := c.checkConfig(); err != nil {
		return err
	}
	c.run.Lock()
	defer c.run.Unlock()
	attempt := 0
	for {
		var st Stats
		connected, err := c.watchOnce(ctx, &st)
		if ctx.Err() != nil {
			return fmt.Errorf("edgesync: watch: %w", context.Cause(ctx))
		}
		if !Retryable(err) {
			return err
		}
		if connected {
			attempt = 0
		}
		c.log.Warn("edgesync: watch: connection lost; retrying", "err", err, "attempt", attempt)
		if err := c.backoff(ctx, attempt, err); err != nil {
			return err
		}
		attempt++
	}
}

func (c *Client) watchOnce(ctx context.Context, st *Stats) (bool, error) {
	s, err := c.connect(ctx, st)
	if err != nil {
		return false, err
	}
	defer s.close()
	poll := time.NewTicker(c.cfg.PollInterval)
	defer poll.Stop()
	ping := time.NewTicker(c.cfg.PingInterval)
	defer ping.Stop()
	push, pull := true, true
	for {
		if push {
			if err := s.pushAll(ctx); err != nil {
				return true, err
			}
			push = false
		}
		if pull || s.poked {
			s.poked = false
			if err := s.pullAll(ctx); err != nil {
				return true, err
			}
			pull = false
		}
		select {
		case <-ctx.Done():
			s.closeNormal()
			return true, ctx.Err()
		case <-c.kick:
			push = true
		case <-poll.C:
			push = true
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, c.cfg.PingInterval)
			err := s.ws.Ping(pctx)
			cancel()
			if err != nil {
				return true, fmt.Errorf("edgesync: ping: %w", err)
			}
		case f, ok := <-s.in:
			if !ok {
				return true, s.readErr()
			}
			if f.Type == MsgPoke {
				pull = true
			}
		}
	}
}

// ---- one connection ----

type session struct {
	c      *Client
	ws     *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	in     chan Frame
	rerr   atomic.Pointer[error]
	wg     sync.WaitGroup
	st     *Stats
	recv   atomic.Int64
	w      welcomeMsg
	lim    FrameLimits
	poked  bool
	// Answers (acks or errors) for push batches still in the window that
	// arrived before the one awaited: a reordered push makes the server
	// answer the later batch first.
	window  map[uint64]bool
	stashed map[uint64]Frame
}

func (c *Client) connect(ctx context.Context, st *Stats) (*session, error) {
	ws, err := c.dialWS(ctx)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	s := &session{c: c, ws: ws, ctx: sctx, cancel: cancel, in: make(chan Frame, 16), st: st,
		lim: FrameLimits{MaxMeta: DefaultReadLimit}}
	ws.SetReadLimit(DefaultReadLimit)
	if err := s.send(MsgHello, &helloMsg{Versions: SupportedVersions(), Device: c.db.Device(), Client: "athena-edge"}); err != nil {
		s.close()
		return nil, err
	}
	// The handshake is read directly, before the reader goroutine starts,
	// so that the read limit can follow the server's.
	hctx, hcancel := context.WithTimeout(ctx, DefaultHandshakeTimeout)
	defer hcancel()
	_, data, err := ws.Read(hctx)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("edgesync: handshake: %w", err)
	}
	s.recv.Add(int64(len(data)))
	f, err := DecodeFrame(data, s.lim)
	if err == nil && f.Type == MsgError {
		var em errorMsg
		if err = decodeMsg(&f, &em); err == nil {
			err = em.err()
		}
	} else if err == nil && f.Type != MsgWelcome {
		err = fmt.Errorf("%w: expected welcome, got %s", ErrProtocol, f.Type)
	} else if err == nil {
		err = decodeMsg(&f, &s.w)
	}
	if err != nil {
		s.close()
		return nil, fmt.Errorf("edgesync: handshake: %w", err)
	}
	if err := s.checkWelcome(ctx); err != nil {
		_ = ws.Close(websocket.StatusPolicyViolation, "device mismatch")
		s.close()
		return nil, err
	}
	s.lim = s.w.Limits.frameLimits()
	s.lim.MaxMeta = max(2*s.w.Limits.MaxMessageBytes, DefaultReadLimit)
	ws.SetReadLimit(int64(s.lim.MaxMeta) + 64<<10)
	s.wg.Add(1)
	go s.reader()
	return s, nil
}

func (s *session) checkWelcome(ctx context.Context) error {
	c := s.c
	own := c.db.Device()
	if s.w.Device != own {
		return fmt.Errorf("edgesync: the token is for device %q, the database is device %q: %w", s.w.Device, own, ErrDeviceMismatch)
	}
	if s.w.ServerID == "" || core.CheckText("server_id", s.w.ServerID, 128, true) != nil {
		return fmt.Errorf("edgesync: %w: bad server id", ErrProtocol)
	}
	var last uint64
	if err := c.db.Backend().View(ctx, func(r core.ReadTx) error {
		var err error
		last, err = r.LastSeq(ctx, own)
		return err
	}); err != nil {
		return fmt.Errorf("edgesync: handshake: %w", err)
	}
	if s.w.LastSeq > last {
		return fmt.Errorf("edgesync: the server holds change %d of device %q but the local log ends at %d; "+
			"this device identity was reused by another database: %w", s.w.LastSeq, own, last, ErrDeviceMismatch)
	}
	info, _ := json.Marshal(serverInfo{URL: redactURL(c.url), Device: own, Project: s.w.Project})
	return c.db.Update(ctx, func(tx *core.Tx) error {
		return tx.PutMeta(ctx, metaServers+s.w.ServerID, string(info))
	})
}

type serverInfo struct {
	URL     string  `json:"url"`
	Device  string  `json:"device"`
	Project core.ID `json:"project"`
}

// redactURL drops query and user info (a ticket, a password).
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	u.RawQuery, u.User, u.Fragment = "", nil, ""
	return u.String()
}

func (s *session) reader() {
	defer s.wg.Done()
	defer close(s.in)
	for {
		_, data, err := s.ws.Read(s.ctx)
		if err != nil {
			s.rerr.Store(&err)
			return
		}
		s.recv.Add(int64(len(data)))
		f, err := DecodeFrame(data, s.lim)
		if err != nil {
			s.rerr.Store(&err)
			_ = s.ws.Close(websocket.StatusPolicyViolation, "bad frame")
			return
		}
		select {
		case s.in <- f:
		case <-s.ctx.Done():
			err := s.ctx.Err()
			s.rerr.Store(&err)
			return
		}
	}
}

func (s *session) readErr() error {
	if p := s.rerr.Load(); p != nil && *p != nil {
		return fmt.Errorf("edgesync: read: %w", *p)
	}
	return fmt.Errorf("edgesync: %w", errConnLost)
}

func (s *session) close() {
	s.cancel()
	_ = s.ws.CloseNow()
	s.wg.Wait()
	s.st.BytesReceived += s.recv.Swap(0)
}

func (s *session) closeNormal() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.ws.Close(websocket.StatusNormalClosure, "done")
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (s *session) send(t MsgType, v any) error {
	b, err := encodeMsg(t, v)
	if err != nil {
		return err
	}
	write := func(b []byte) error {
		ctx, cancel := context.WithTimeout(s.ctx, DefaultWriteTimeout)
		defer cancel()
		return s.ws.Write(ctx, websocket.MessageBinary, b)
	}
	if h := s.c.cfg.TestHooks; h != nil && h.Write != nil && (t == MsgPush || t == MsgPull) {
		err = h.Write(t, b, write)
	} else {
		err = write(b)
	}
	if err != nil {
		return fmt.Errorf("edgesync: write %s: %w", t, err)
	}
	s.st.BytesSent += int64(len(b))
	if t == MsgPush {
		s.st.PushBytes += int64(len(b))
	}
	return nil
}

// await returns the next frame answering batch (MsgAck) or req
// (MsgChanges), or an error frame for it. Pokes are noted; stale answers
// (for other batches or requests, e.g. duplicated frames) are dropped.
func (s *session) await(ctx context.Context, want MsgType, id uint64) (Frame, error) {
	if want == MsgAck {
		if f, ok := s.stashed[id]; ok {
			delete(s.stashed, id)
			return s.answer(f)
		}
	}
	for {
		var f Frame
		var ok bool
		select {
		case <-ctx.Done():
			return Frame{}, fmt.Errorf("edgesync: %w", ctx.Err())
		case f, ok = <-s.in:
		}
		if !ok {
			return Frame{}, s.readErr()
		}
		switch f.Type {
		case MsgPoke:
			s.poked = true
		case MsgError:
			var em errorMsg
			if err := decodeMsg(&f, &em); err != nil {
				return Frame{}, err
			}
			if (want == MsgAck && em.Batch == id) || (want == MsgChanges && em.Req == id) || (em.Batch == 0 && em.Req == 0) {
				return Frame{}, em.err()
			}
			s.stash(em.Batch, f)
		case want:
			var probe struct {
				Batch uint64 `json:"batch"`
				Req   uint64 `json:"req"`
			}
			if err := json.Unmarshal(f.Meta, &probe); err != nil {
				return Frame{}, fmt.Errorf("%w: %v", errFrame, err)
			}
			if (want == MsgAck && probe.Batch == id) || (want == MsgChanges && probe.Req == id) {
				return f, nil
			}
			if want == MsgAck {
				s.stash(probe.Batch, f)
			}
		}
	}
}

// stash keeps an answer for a push batch still in the window; answers for
// anything else are stale (duplicates) and dropped.
func (s *session) stash(batch uint64, f Frame) {
	if batch == 0 || !s.window[batch] {
		return
	}
	if s.stashed == nil {
		s.stashed = map[uint64]Frame{}
	}
	if _, dup := s.stashed[batch]; !dup {
		s.stashed[batch] = f
	}
}

// answer turns a stashed frame into await's result.
func (s *session) answer(f Frame) (Frame, error) {
	if f.Type == MsgError {
		var em errorMsg
		if err := decodeMsg(&f, &em); err != nil {
			return Frame{}, err
		}
		return Frame{}, em.err()
	}
	return f, nil
}

// waitRetry sleeps out a rate limit.
func waitRetry(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(max(d, time.Millisecond))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("edgesync: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}

// ---- push ----

type pushState struct {
	acked  uint64
	ackPos int64
}

func metaUint(ctx context.Context, tx *core.Tx, key string) (uint64, error) {
	v, err := tx.Meta(ctx, key)
	if errors.Is(err, core.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(v, 10, 64)
}

func metaInt(ctx context.Context, tx *core.Tx, key string) (int64, error) {
	v, err := tx.Meta(ctx, key)
	if errors.Is(err, core.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(v, 10, 64)
}

// inflight is a push batch sent and not yet acknowledged.
type inflight struct {
	id      uint64
	batch   []core.Change
	lastPos int64
	sent    time.Time
}

func (s *session) pushAll(ctx context.Context) error {
	c, srv, own := s.c, s.w.ServerID, s.c.db.Device()
	var ps pushState
	var last uint64
	err := c.db.View(ctx, func(tx *core.Tx) error {
		var err error
		if ps.acked, err = metaUint(ctx, tx, metaAcked+srv); err != nil {
			return err
		}
		ps.ackPos, err = metaInt(ctx, tx, metaAckPos+srv)
		return err
	})
	if err == nil {
		err = c.db.Backend().View(ctx, func(r core.ReadTx) error {
			var err error
			last, err = r.LastSeq(ctx, own)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("edgesync: push: %w", err)
	}
	if s.w.LastSeq < ps.acked { // the server lost changes it had acknowledged (restored from a backup): resend
		ps.acked, ps.ackPos = s.w.LastSeq, 0
	}
	maxN := min(c.cfg.BatchSize, s.w.Limits.MaxBatch)
	maxBytes := c.cfg.BatchBytes
	if lim := s.w.Limits.MaxMessageBytes - 64<<10; maxBytes <= 0 || maxBytes > lim {
		maxBytes = lim
	}
	prog := Progress{PushTotal: int(last - min(last, ps.acked))}
	rewinds := 0
	sent := ps // the outbox is read after the last batch sent
	var window []inflight
	s.window, s.stashed = map[uint64]bool{}, nil
	defer func() { s.window, s.stashed = nil, nil }()
	done := false // the outbox had nothing after sent
	for {
		for !done && len(window) < c.cfg.Pipeline {
			batch, lastPos, err := s.outbox(ctx, sent, maxN, maxBytes)
			if err != nil {
				return fmt.Errorf("edgesync: push: %w", err)
			}
			if len(batch) == 0 {
				done = true
				break
			}
			b := inflight{id: c.ids.Add(1), batch: batch, lastPos: lastPos, sent: time.Now()}
			if err := s.send(MsgPush, &pushMsg{Batch: b.id, Changes: batch}); err != nil {
				return err
			}
			window = append(window, b)
			s.window[b.id] = true
			sent = pushState{acked: batch[len(batch)-1].Seq, ackPos: lastPos}
		}
		if len(window) == 0 {
			return nil
		}
		b := window[0]
		f, err := s.await(ctx, MsgAck, b.id)
		var we *Error
		if errors.As(err, &we) && (we.Code == CodeRateLimited || we.Code == CodeSeqGap && we.LastSeq < b.batch[0].Seq-1) {
			// The server refused the batch; those behind it in the window
			// are refused too (or acknowledged, if they overlap what it
			// holds). Drain their answers and resend from the right place.
			delete(s.window, b.id)
			for _, o := range window[1:] {
				if _, derr := s.await(ctx, MsgAck, o.id); derr != nil && !errors.As(derr, new(*Error)) {
					return derr
				}
				delete(s.window, o.id)
			}
			window, done = window[:0], false
			clear(s.stashed)
			if we.Code == CodeRateLimited {
				sent = ps
				if err := waitRetry(ctx, we.RetryAfter); err != nil {
					return err
				}
				continue
			}
			// The server is behind our cursor: resend from its end.
			if rewinds++; rewinds > 3 {
				return fmt.Errorf("edgesync: push: server keeps refusing the sequence: %w", err)
			}
			ps.acked, ps.ackPos = we.LastSeq, 0
			sent = ps
			continue
		}
		if err != nil {
			return err
		}
		var ack ackMsg
		if err := decodeMsg(&f, &ack); err != nil {
			return err
		}
		batch := b.batch
		if len(ack.Results) != len(batch) {
			return fmt.Errorf("edgesync: push: %w: %d results for %d changes", ErrProtocol, len(ack.Results), len(batch))
		}
		for i := range batch {
			if ack.Results[i].Seq != batch[i].Seq || ack.Results[i].Device != batch[i].Device {
				return fmt.Errorf("edgesync: push: %w: result %d is for %s/%d", ErrProtocol, i, ack.Results[i].Device, ack.Results[i].Seq)
			}
		}
		if h := c.cfg.TestHooks; h != nil && h.AfterAck != nil {
			h.AfterAck(batch[len(batch)-1].Seq)
		}
		if err := s.recordAck(ctx, batch, ack.Results, b.lastPos); err != nil {
			return err
		}
		window = window[1:]
		delete(s.window, b.id)
		rewinds = 0
		ps.acked, ps.ackPos = batch[len(batch)-1].Seq, b.lastPos
		if h := c.cfg.TestHooks; h != nil && h.Acked != nil {
			h.Acked(len(batch), time.Since(b.sent))
		}
		prog.Pushed += len(batch)
		if c.cfg.Progress != nil {
			c.cfg.Progress(prog)
		}
	}
}

// Bounds of the pages a change log is read in, by the edge's outbox and
// the server's pull: pages grow from firstLogPage to maxLogPage (and the
// DB's MaxK). A message fills its bytes with a few dozen memory changes,
// and reading (and copying) a thousand 3 KB changes to send thirty was most
// of the edge's work per batch.
const (
	firstLogPage = 64
	maxLogPage   = 1000
)

// outbox returns the next own changes after ps, in sequence order, within
// the batch bounds, and the local log position of the last one.
func (s *session) outbox(ctx context.Context, ps pushState, maxN, maxBytes int) ([]core.Change, int64, error) {
	own := s.c.db.Device()
	var out []core.Change
	var lastPos int64
	size := 0
	err := s.c.db.View(ctx, func(tx *core.Tx) error {
		pos := ps.ackPos
		top := min(maxLogPage, s.c.db.Limits().MaxK) // the most one Changes call returns
		page := min(firstLogPage, top)
		for ; ; page = min(2*page, top) {
			cs, err := tx.Changes(ctx, pos, page, "")
			if err != nil {
				return err
			}
			for i := range cs {
				ch := cs[i]
				pos = ch.Pos
				if ch.Device != own || ch.Seq <= ps.acked {
					continue
				}
				n := changeSize(&ch)
				if n > maxBytes {
					p, _ := json.Marshal(map[string]any{"kind": ch.Kind, "bytes": n})
					ch.Kind, ch.Payload, ch.Vector = kindOversize, p, nil
					n = changeSize(&ch)
				}
				if len(out) >= maxN || len(out) > 0 && size+n > maxBytes {
					return nil
				}
				out = append(out, ch)
				size += n
				lastPos = ch.Pos
			}
			if len(cs) < page {
				return nil
			}
		}
	})
	return out, lastPos, err
}

// DeadLetter is an own change the server rejected. It stays in the edge's
// metadata, visible in Status; it never blocks the changes behind it.
type DeadLetter struct {
	Seq      uint64    `json:"seq"`
	Kind     core.Kind `json:"kind"`
	EntityID core.ID   `json:"entity_id"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

func (s *session) recordAck(ctx context.Context, batch []core.Change, res []core.ApplyResult, lastPos int64) error {
	srv := s.w.ServerID
	now := s.c.db.Clock().PhysicalNow().UTC().Truncate(time.Millisecond)
	err := s.c.db.Update(ctx, func(tx *core.Tx) error {
		for i, r := range res {
			if r.Status != core.StatusRejected || r.Duplicate {
				continue
			}
			dl, _ := json.Marshal(DeadLetter{Seq: r.Seq, Kind: batch[i].Kind, EntityID: batch[i].EntityID, Reason: r.Reason, At: now})
			if err := tx.PutMeta(ctx, fmt.Sprintf("%s%s/%020d", metaDead, srv, r.Seq), string(dl)); err != nil {
				return err
			}
		}
		if err := tx.PutMeta(ctx, metaAcked+srv, strconv.FormatUint(batch[len(batch)-1].Seq, 10)); err != nil {
			return err
		}
		return tx.PutMeta(ctx, metaAckPos+srv, strconv.FormatInt(lastPos, 10))
	})
	if err != nil {
		return fmt.Errorf("edgesync: record ack: %w", err)
	}
	s.st.Batches++
	for _, r := range res {
		s.st.Pushed++
		switch {
		case r.Duplicate:
			s.st.Duplicates++
		case r.Status == core.StatusApplied:
			s.st.Applied++
		case r.Status == core.StatusSuperseded:
			s.st.Superseded++
		case r.Status == core.StatusRejected:
			s.st.Rejected++
		}
	}
	return nil
}

// ---- pull ----

func (s *session) pullAll(ctx context.Context) error {
	c, srv, own := s.c, s.w.ServerID, s.c.db.Device()
	var cursor int64
	if err := c.db.View(ctx, func(tx *core.Tx) error {
		var err error
		cursor, err = metaInt(ctx, tx, metaPulled+srv)
		return err
	}); err != nil {
		return fmt.Errorf("edgesync: pull: %w", err)
	}
	var prog Progress
	for {
		id := c.ids.Add(1)
		var m changesMsg
		for {
			if err := s.send(MsgPull, &pullMsg{Req: id, After: cursor, Limit: s.w.Limits.MaxBatch}); err != nil {
				return err
			}
			f, err := s.await(ctx, MsgChanges, id)
			var we *Error
			if errors.As(err, &we) && we.Code == CodeRateLimited {
				if err := waitRetry(ctx, we.RetryAfter); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
			if err := decodeMsg(&f, &m); err != nil {
				return err
			}
			break
		}
		cs := m.Changes[:0]
		for _, ch := range m.Changes {
			if ch.Device != own { // never our own: the server excludes them
				cs = append(cs, ch)
			}
		}
		applied := 0
		err := c.db.Update(ctx, func(tx *core.Tx) error {
			applied = 0
			if len(cs) > 0 {
				res, err := tx.ApplyPulled(ctx, cs)
				if err != nil {
					return err
				}
				for _, r := range res {
					if r.Status == core.StatusApplied && !r.Duplicate {
						applied++
					}
				}
			}
			n, err := metaInt(ctx, tx, metaPulledN+srv)
			if err != nil {
				return err
			}
			if err := tx.PutMeta(ctx, metaPulledN+srv, strconv.FormatInt(n+int64(len(cs)), 10)); err != nil {
				return err
			}
			return tx.PutMeta(ctx, metaPulled+srv, strconv.FormatInt(m.Next, 10))
		})
		if err != nil {
			return fmt.Errorf("edgesync: apply pulled: %w", err)
		}
		cursor = m.Next
		s.st.Pulled += len(cs)
		s.st.PulledApplied += applied
		prog.Pulled += len(cs)
		prog.More = m.More
		if c.cfg.Progress != nil && len(cs) > 0 {
			c.cfg.Progress(prog)
		}
		if !m.More {
			return nil
		}
	}
}
