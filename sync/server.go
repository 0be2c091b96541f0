package edgesync

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/coder/websocket"
)

// Paths served by [Server.ServeHTTP].
const (
	PathSync    = "/v1/sync"
	PathTicket  = "/v1/ticket"
	PathHealthz = "/healthz"
)

// kindOversize is the kind of the payload-free stub an edge sends for a
// change over the message limit; the server records it rejected
// (core.Tx.RecordRejected) so that the device's sequence stays gapless.
const kindOversize core.Kind = "sync.oversize"

// metaSeen + device → the server time (Unix ms) at which the device last
// caught up: a pull answered with more=false, so the device had seen every
// change committed before then. The tombstone horizon is checked on it.
const metaSeen = "sync/seen/"

// seenEvery throttles the seen record: it is rewritten at most this often
// per device and process. A record that lags is conservative (an older
// catch-up time can only make the horizon check stricter).
const seenEvery = time.Minute

// ServerConfig configures a [Server]. Only DB is required; every other
// zero field takes the Default* value named in its doc.
type ServerConfig struct {
	// DB is the central database (required). Its store must implement
	// core.MetaTx. Its Device must differ from every edge's.
	DB *core.DB
	// Tokens verifies device tokens. Nil means NewTokens(DB).
	Tokens *Tokens
	// OriginPatterns allowlists browser origins (path.Match patterns on
	// the origin's host, or on scheme://host when the pattern has "://").
	// The request's own host is always allowed; a handshake without an
	// Origin header (a non-browser edge) is allowed and still needs a token.
	OriginPatterns []string
	// ReadLimit is the largest message accepted (DefaultReadLimit). Larger
	// messages close the connection with 1009.
	ReadLimit int64
	// MaxBatch caps changes per push and per changes frame (DefaultMaxBatch).
	MaxBatch int
	// Rate and Burst size each device's token bucket of messages
	// (DefaultRate per second, DefaultBurst). A negative Rate disables it.
	Rate  float64
	Burst int
	// MaxConnsPerDevice (DefaultMaxConnsPerDevice) and MaxConns
	// (DefaultMaxConns) cap live connections; over the caps a handshake is
	// refused with 429 and 503 before the upgrade.
	MaxConnsPerDevice int
	MaxConns          int
	// PingInterval (DefaultPingInterval): pings on live connections; one
	// that is not answered within the interval closes the connection.
	PingInterval time.Duration
	// WriteTimeout (DefaultWriteTimeout) bounds each message written.
	WriteTimeout time.Duration
	// HandshakeTimeout (DefaultHandshakeTimeout) bounds hello → welcome.
	HandshakeTimeout time.Duration
	// RevalidateInterval (DefaultRevalidateInterval): how often a live
	// connection's token is checked again, so that revocation closes it.
	RevalidateInterval time.Duration
	// TicketTTL (DefaultTicketTTL) is the lifetime of a browser ticket.
	TicketTTL time.Duration
	// Logger receives connection-level events. Nil discards. Tokens,
	// tickets and URLs with query strings are never logged.
	Logger *slog.Logger
	// Notifier fans out commits to live connections. Nil means a
	// LocalNotifier private to this Server.
	Notifier Notifier
	// AfterCommit, if set, runs after a push batch commits and before its
	// ack is written. An error closes the connection without the ack (a
	// test failpoint for "crash between commit and ack").
	AfterCommit func(device string, batch uint64) error
	// TombstoneHorizon is how long deletes are remembered as tombstones
	// (core.DefaultTombstoneHorizon, 30 days, if zero; negative keeps them
	// forever). When the store can purge tombstones (core.TombstoneGC), a
	// device that has not caught up with the server (a pull that reached
	// the end) within the horizon may no longer push: its pushes are
	// refused with CodeResyncRequired, because its edits of memories
	// deleted since could resurrect them once the tombstones are purged.
	// Server.PurgeTombstones drops tombstones older than the horizon plus
	// core.TombstoneGrace. docs/SYNC.md, "Tombstone horizon".
	TombstoneHorizon time.Duration
	// Now is the server's clock for the tombstone horizon (nil:
	// time.Now). Tests move it.
	Now func() time.Time
}

// Server serves the sync protocol over WebSocket. It is an http.Handler
// and is safe for concurrent use. Its goroutines (one per live connection
// plus one helper each) end by Shutdown.
type Server struct {
	cfg      ServerConfig
	db       *core.DB
	log      *slog.Logger
	tokens   *Tokens
	notifier Notifier
	limits   Limits
	horizon  bool // the tombstone horizon is enforced (see ServerConfig.TombstoneHorizon)

	baseCtx context.Context // cancelled when Shutdown gives up waiting
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu        sync.Mutex
	closing   bool
	conns     map[*srvConn]struct{}
	perDevice map[string]int
	buckets   map[string]*bucket
	tickets   map[string]ticket

	idMu     sync.Mutex
	serverID string

	seenMu sync.Mutex
	seen   map[string]time.Time // device → catch-up time last recorded by this process
}

type ticket struct {
	tokenHash string
	expires   time.Time
}

// NewServer returns a Server for cfg. It does no I/O and starts no
// goroutine. It panics if cfg.DB is nil, a programming error.
func NewServer(cfg ServerConfig) *Server {
	if cfg.DB == nil {
		panic("edgesync: NewServer: ServerConfig.DB is required")
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if cfg.ReadLimit <= 0 {
		cfg.ReadLimit = DefaultReadLimit
	}
	def(&cfg.MaxBatch, DefaultMaxBatch)
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	def(&cfg.Burst, DefaultBurst)
	def(&cfg.MaxConnsPerDevice, DefaultMaxConnsPerDevice)
	def(&cfg.MaxConns, DefaultMaxConns)
	defd(&cfg.PingInterval, DefaultPingInterval)
	defd(&cfg.WriteTimeout, DefaultWriteTimeout)
	defd(&cfg.HandshakeTimeout, DefaultHandshakeTimeout)
	defd(&cfg.RevalidateInterval, DefaultRevalidateInterval)
	defd(&cfg.TicketTTL, DefaultTicketTTL)
	if cfg.TombstoneHorizon == 0 {
		cfg.TombstoneHorizon = core.DefaultTombstoneHorizon
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, db: cfg.DB, log: cfg.Logger, tokens: cfg.Tokens, notifier: cfg.Notifier,
		conns: map[*srvConn]struct{}{}, perDevice: map[string]int{}, buckets: map[string]*bucket{}, tickets: map[string]ticket{},
		seen: map[string]time.Time{}}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.tokens == nil {
		s.tokens = NewTokens(cfg.DB)
	}
	if s.notifier == nil {
		s.notifier = &LocalNotifier{}
	}
	s.limits = Limits{MaxMessageBytes: int(cfg.ReadLimit), MaxBatch: cfg.MaxBatch, MaxDim: DefaultMaxWireDim,
		Rate: max(cfg.Rate, 0), Burst: cfg.Burst}
	s.horizon = cfg.TombstoneHorizon > 0 && core.CanPurgeTombstones(cfg.DB.Backend())
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Limits returns the limits the server announces and enforces.
func (s *Server) Limits() Limits { return s.limits }

// ServeHTTP serves PathSync (the WebSocket), PathTicket (POST with a bearer
// token → a single-use ticket for browsers) and PathHealthz.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case PathSync:
		s.handleSync(w, r)
	case PathTicket:
		s.handleTicket(w, r)
	case PathHealthz:
		if err := s.db.Ping(r.Context()); err != nil {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		if s.isClosing() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// checkOrigin is coder/websocket's rule, applied before authentication so
// that a cross-origin handshake is refused (403) whatever it carries.
func checkOrigin(r *http.Request, patterns []string) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%w: bad Origin", ErrForbidden)
	}
	if strings.EqualFold(r.Host, u.Host) {
		return nil
	}
	for _, p := range patterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, err := path.Match(strings.ToLower(p), strings.ToLower(target)); err == nil && ok {
			return nil
		}
	}
	return fmt.Errorf("%w: origin %q is not allowed", ErrForbidden, u.Host)
}

// authenticate returns the token of the request's bearer header or ticket.
func (s *Server) authenticate(r *http.Request, allowTicket bool) (Token, string, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		plain, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return Token{}, "", ErrUnauthorized
		}
		plain = strings.TrimSpace(plain)
		tok, err := s.tokens.Verify(r.Context(), plain)
		return tok, hashToken(plain), err
	}
	if t := r.URL.Query().Get("ticket"); t != "" && allowTicket {
		th := hashToken(t)
		now := time.Now()
		s.mu.Lock()
		tk, ok := s.tickets[th]
		delete(s.tickets, th) // single use
		s.mu.Unlock()
		if !ok || now.After(tk.expires) {
			return Token{}, "", fmt.Errorf("edgesync: ticket: %w", ErrUnauthorized)
		}
		tok, err := s.tokens.byHash(r.Context(), tk.tokenHash)
		return tok, tk.tokenHash, err
	}
	return Token{}, "", fmt.Errorf("edgesync: no credentials: %w", ErrUnauthorized)
}

func (s *Server) handleTicket(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if err := checkOrigin(r, s.cfg.OriginPatterns); err != nil {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	tok, h, err := s.authenticate(r, false)
	if err != nil {
		s.log.Warn("sync: ticket refused", "remote", r.RemoteAddr, "reason", "unauthorized")
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	var raw [24]byte
	_, _ = rand.Read(raw[:])
	t := "at_" + base64.RawURLEncoding.EncodeToString(raw[:])
	now := time.Now()
	s.mu.Lock()
	for k, v := range s.tickets {
		if now.After(v.expires) {
			delete(s.tickets, k)
		}
	}
	if len(s.tickets) >= 4*s.cfg.MaxConns {
		s.mu.Unlock()
		http.Error(w, "too many tickets", http.StatusTooManyRequests)
		return
	}
	s.tickets[hashToken(t)] = ticket{tokenHash: h, expires: now.Add(s.cfg.TicketTTL)}
	s.mu.Unlock()
	s.log.Info("sync: ticket issued", "device", tok.Device, "token_id", tok.ID)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"ticket": t, "expires_in_ms": s.cfg.TicketTTL.Milliseconds()})
}

// admit reserves a connection slot for device, or returns the HTTP status
// refusing it.
func (s *Server) admit(device string) (func(), int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing:
		return nil, http.StatusServiceUnavailable
	case len(s.conns)+s.pending() >= s.cfg.MaxConns:
		return nil, http.StatusServiceUnavailable
	case s.perDevice[device] >= s.cfg.MaxConnsPerDevice:
		return nil, http.StatusTooManyRequests
	}
	s.perDevice[device]++
	s.wg.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			if s.perDevice[device]--; s.perDevice[device] <= 0 {
				delete(s.perDevice, device)
			}
			s.mu.Unlock()
			s.wg.Done()
		})
	}, 0
}

// pending counts admitted connections not yet registered; with
// perDevice it bounds the total. Called with s.mu held.
func (s *Server) pending() int {
	n := 0
	for _, c := range s.perDevice {
		n += c
	}
	return n - len(s.conns)
}

func (s *Server) handleSync(w http.ResponseWriter, r *http.Request) {
	if s.isClosing() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	if err := checkOrigin(r, s.cfg.OriginPatterns); err != nil {
		s.log.Warn("sync: cross-origin handshake refused", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"))
		http.Error(w, "forbidden origin", http.StatusForbidden)
		return
	}
	tok, h, err := s.authenticate(r, true)
	if err != nil {
		s.log.Warn("sync: handshake refused", "remote", r.RemoteAddr, "reason", "unauthorized")
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if tok.Device == s.db.Device() {
		http.Error(w, "the token's device is the server's own", http.StatusForbidden)
		return
	}
	release, status := s.admit(tok.Device)
	if status != 0 {
		s.log.Warn("sync: connection refused", "device", tok.Device, "status", status)
		http.Error(w, http.StatusText(status), status)
		return
	}
	defer release()
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: s.cfg.OriginPatterns})
	if err != nil {
		s.log.Warn("sync: upgrade failed", "device", tok.Device, "err", err)
		return
	}
	s.serveConn(ws, tok, h, r.RemoteAddr)
}

// srvConn is one live connection.
type srvConn struct {
	s      *Server
	ws     *websocket.Conn
	tok    Token
	hash   string
	cancel context.CancelCauseFunc

	procMu  sync.Mutex // held while a message is processed
	closing bool       // under procMu: process no more messages
	caught  time.Time  // under procMu: the device's last catch-up (zero: never recorded)

	ctx   context.Context // the connection's; cancelled when it ends
	last  *pushJob        // the newest push job (reader goroutine only)
	jobs  chan struct{}   // a slot per push job running, maxPushJobs
	jobWG sync.WaitGroup  // push jobs running; Add under procMu while !closing
}

func (s *Server) register(cc *srvConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[cc] = struct{}{}
	return true
}

func (s *Server) unregister(cc *srvConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, cc)
}

func (s *Server) serveConn(ws *websocket.Conn, tok Token, h, remote string) {
	ctx, cancel := context.WithCancelCause(s.baseCtx)
	cc := &srvConn{s: s, ws: ws, tok: tok, hash: h, cancel: cancel, ctx: ctx, jobs: make(chan struct{}, maxPushJobs)}
	defer cc.jobWG.Wait() // a push job commits even if the connection is gone
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ws.CloseNow() //nolint:errcheck
	defer cancel(nil)
	if !cc.s.register(cc) {
		_ = ws.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	defer s.unregister(cc)
	ws.SetReadLimit(s.cfg.ReadLimit)
	log := s.log.With("device", tok.Device, "token_id", tok.ID, "remote", remote)
	if err := cc.handshake(ctx); err != nil {
		log.Warn("sync: handshake failed", "err", err)
		return
	}
	log.Info("sync: connected")
	wg.Add(1)
	go func() {
		defer wg.Done()
		cc.watch(ctx, log)
	}()
	for {
		typ, data, err := ws.Read(ctx)
		if err != nil {
			log.Info("sync: disconnected", "status", websocket.CloseStatus(err), "cause", context.Cause(ctx))
			return
		}
		if typ != websocket.MessageBinary {
			_ = cc.sendErr(&Error{Code: CodeBadFrame, Message: "text frames are not part of the protocol"})
			_ = ws.Close(websocket.StatusUnsupportedData, "binary frames only")
			return
		}
		cc.procMu.Lock()
		keep := true
		if !cc.closing {
			keep = cc.handle(data, log)
		}
		cc.procMu.Unlock()
		if !keep {
			return
		}
	}
}

func (cc *srvConn) send(t MsgType, v any) error {
	b, err := encodeMsg(t, v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cc.s.baseCtx, cc.s.cfg.WriteTimeout)
	defer cancel()
	return cc.ws.Write(ctx, websocket.MessageBinary, b)
}

func (cc *srvConn) sendErr(e *Error) error { return cc.send(MsgError, wireError(e)) }

func (s *Server) id(ctx context.Context) (string, error) {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	if s.serverID != "" {
		return s.serverID, nil
	}
	err := s.db.Update(ctx, func(tx *core.Tx) error {
		v, err := tx.Meta(ctx, metaServerID)
		if err == nil {
			s.serverID = v
			return nil
		}
		if !errors.Is(err, core.ErrNotFound) {
			return err
		}
		v = string(core.NewID(time.Now()))
		if err := tx.PutMeta(ctx, metaServerID, v); err != nil {
			return err
		}
		s.serverID = v
		return nil
	})
	if err != nil {
		s.serverID = ""
		return "", fmt.Errorf("edgesync: server id: %w", err)
	}
	return s.serverID, nil
}

func (s *Server) lastSeq(ctx context.Context, device string) (uint64, error) {
	var n uint64
	err := s.db.Backend().View(ctx, func(r core.ReadTx) error {
		var err error
		n, err = r.LastSeq(ctx, device)
		return err
	})
	return n, err
}

func (cc *srvConn) handshake(ctx context.Context) error {
	s := cc.s
	hctx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
	defer cancel()
	typ, data, err := cc.ws.Read(hctx)
	if err != nil {
		return err
	}
	f, err := DecodeFrame(data, s.limits.frameLimits())
	if err != nil || typ != websocket.MessageBinary || f.Type != MsgHello {
		_ = cc.sendErr(&Error{Code: CodeUnexpected, Message: "expected hello"})
		_ = cc.ws.Close(websocket.StatusPolicyViolation, "expected hello")
		return fmt.Errorf("%w: expected hello", ErrProtocol)
	}
	var h helloMsg
	if err := decodeMsg(&f, &h); err != nil {
		_ = cc.sendErr(&Error{Code: CodeBadFrame, Message: err.Error()})
		_ = cc.ws.Close(websocket.StatusPolicyViolation, "bad hello")
		return err
	}
	version := 0
	for _, v := range h.Versions {
		if v >= 1 && v <= ProtocolVersion && v > version {
			version = v
		}
	}
	if version == 0 {
		_ = cc.sendErr(&Error{Code: CodeUnsupportedVersion,
			Message: fmt.Sprintf("server speaks versions %v, client offered %v", SupportedVersions(), h.Versions)})
		_ = cc.ws.Close(websocket.StatusPolicyViolation, "unsupported protocol version")
		return fmt.Errorf("%w: unsupported version %v", ErrProtocol, h.Versions)
	}
	id, err := s.id(ctx)
	if err != nil {
		_ = cc.sendErr(&Error{Code: CodeInternal, Message: "server unavailable"})
		return err
	}
	last, err := s.lastSeq(ctx, cc.tok.Device)
	if err != nil {
		_ = cc.sendErr(&Error{Code: CodeInternal, Message: "server unavailable"})
		return err
	}
	if s.horizon {
		caught, err := s.caughtUp(ctx, cc.tok.Device)
		if err != nil {
			_ = cc.sendErr(&Error{Code: CodeInternal, Message: "server unavailable"})
			return err
		}
		if caught.IsZero() && last > 0 {
			// A device that pushed before catch-up times were recorded:
			// counted from now (docs/SYNC.md, "Tombstone horizon").
			caught = s.cfg.Now()
		}
		cc.procMu.Lock()
		cc.caught = caught
		cc.procMu.Unlock()
	}
	w := &welcomeMsg{Version: version, ServerID: id, Device: cc.tok.Device, Project: cc.tok.ProjectID,
		ServerTimeMS: time.Now().UnixMilli(), LastSeq: last, Limits: s.limits}
	if s.cfg.TombstoneHorizon > 0 {
		w.TombstoneHorizonMS = s.cfg.TombstoneHorizon.Milliseconds()
	}
	return cc.send(MsgWelcome, w)
}

// caughtUp returns the device's last recorded catch-up time, or zero.
func (s *Server) caughtUp(ctx context.Context, device string) (time.Time, error) {
	var t time.Time
	err := s.db.View(ctx, func(tx *core.Tx) error {
		ms, err := metaInt(ctx, tx, metaSeen+device)
		if ms > 0 {
			t = time.UnixMilli(ms)
		}
		return err
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("edgesync: caught up: %w", err)
	}
	return t, nil
}

// recordCaughtUp notes that device had seen every change committed before
// at (throttled by seenEvery; the stored value only moves forward).
func (s *Server) recordCaughtUp(ctx context.Context, device string, at time.Time) error {
	s.seenMu.Lock()
	prev, ok := s.seen[device]
	s.seenMu.Unlock()
	if ok && at.Sub(prev) < seenEvery {
		return nil
	}
	err := s.db.Update(ctx, func(tx *core.Tx) error {
		cur, err := metaInt(ctx, tx, metaSeen+device)
		if err != nil || cur >= at.UnixMilli() {
			return err
		}
		return tx.PutMeta(ctx, metaSeen+device, strconv.FormatInt(at.UnixMilli(), 10))
	})
	if err != nil {
		return fmt.Errorf("edgesync: record caught up: %w", err)
	}
	s.seenMu.Lock()
	if at.After(s.seen[device]) {
		s.seen[device] = at
	}
	s.seenMu.Unlock()
	return nil
}

// PurgeTombstones drops the tombstones older than the tombstone horizon
// plus core.TombstoneGrace (core.DB.PurgeTombstones) and returns how many
// it dropped. It is an explicit admin call (run it from cron or a serve
// loop); with a negative horizon, or on a store that keeps tombstones
// forever, it returns an error wrapping core.ErrInvalid.
func (s *Server) PurgeTombstones(ctx context.Context) (int, error) {
	if s.cfg.TombstoneHorizon <= 0 {
		return 0, fmt.Errorf("edgesync: purge tombstones: %w: the tombstone horizon is disabled (keep forever)", core.ErrInvalid)
	}
	n, err := s.db.PurgeTombstones(ctx, core.TombstoneCutoff(s.cfg.Now(), s.cfg.TombstoneHorizon))
	if err != nil {
		return n, fmt.Errorf("edgesync: %w", err)
	}
	return n, nil
}

// watch pings, re-checks the token and forwards pokes until ctx ends.
func (cc *srvConn) watch(ctx context.Context, log *slog.Logger) {
	s := cc.s
	pokes, unsubscribe := s.notifier.Subscribe(cc.tok.ProjectID, cc.tok.Device)
	defer unsubscribe()
	ping := time.NewTicker(s.cfg.PingInterval)
	defer ping.Stop()
	reval := time.NewTicker(s.cfg.RevalidateInterval)
	defer reval.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-pokes:
			if err := cc.send(MsgPoke, struct{}{}); err != nil {
				cc.cancel(err)
				return
			}
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, s.cfg.PingInterval)
			err := cc.ws.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				log.Info("sync: ping failed; closing", "err", err)
				cc.cancel(err)
				_ = cc.ws.CloseNow()
				return
			}
		case <-reval.C:
			tok, err := s.tokens.byHash(ctx, cc.hash)
			if errors.Is(err, ErrUnauthorized) || err == nil && (tok.Device != cc.tok.Device || tok.ProjectID != cc.tok.ProjectID) {
				log.Info("sync: token revoked; closing")
				_ = cc.sendErr(&Error{Code: CodeUnauthorized, Message: "token revoked"})
				// Close first: cancelling first ends the reader, whose
				// CloseNow could beat the close frame to the wire.
				_ = cc.ws.Close(websocket.StatusPolicyViolation, "token revoked")
				cc.cancel(ErrUnauthorized)
				return
			}
		}
	}
}

// handle processes one message; false ends the connection.
func (cc *srvConn) handle(data []byte, log *slog.Logger) bool {
	s := cc.s
	f, err := DecodeFrame(data, s.limits.frameLimits())
	if err != nil {
		return cc.drain() && cc.sendErr(&Error{Code: CodeBadFrame, Message: err.Error()}) == nil
	}
	if f.Type != MsgPush && !cc.drain() { // answers go out in order
		return false
	}
	switch f.Type {
	case MsgPush, MsgPull:
	case MsgHello:
		return cc.sendErr(&Error{Code: CodeUnexpected, Message: "hello after welcome"}) == nil
	default:
		return cc.sendErr(&Error{Code: CodeUnknownType, Message: "unknown or unexpected message type " + f.Type.String()}) == nil
	}
	if ok, wait := cc.allow(); !ok {
		if !cc.drain() {
			return false
		}
		e := &Error{Code: CodeRateLimited, Message: "rate limited", RetryAfter: wait}
		if f.Type == MsgPush {
			var m pushMsg
			if decodeMsg(&f, &m) == nil {
				e.Batch = m.Batch
			}
		} else {
			var m pullMsg
			if decodeMsg(&f, &m) == nil {
				e.Req = m.Req
			}
		}
		return cc.sendErr(e) == nil
	}
	if f.Type == MsgPush {
		var m pushMsg
		if err := decodeMsg(&f, &m); err != nil {
			return cc.drain() && cc.sendErr(&Error{Code: CodeBadFrame, Message: err.Error()}) == nil
		}
		return cc.push(&m, log)
	}
	var m pullMsg
	if err := decodeMsg(&f, &m); err != nil {
		return cc.sendErr(&Error{Code: CodeBadFrame, Message: err.Error()}) == nil
	}
	return cc.pull(&m, log)
}

func (cc *srvConn) allow() (bool, time.Duration) {
	s := cc.s
	if s.cfg.Rate < 0 {
		return true, 0
	}
	now := time.Now()
	s.mu.Lock()
	b := s.buckets[cc.tok.Device]
	if b == nil {
		b = newBucket(s.cfg.Rate, s.cfg.Burst, now)
		s.buckets[cc.tok.Device] = b
	}
	s.mu.Unlock()
	return b.take(now)
}

func (cc *srvConn) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(cc.s.baseCtx, 2*cc.s.cfg.WriteTimeout+30*time.Second)
}

// pushJob is a push batch being applied. The reader goroutine starts it
// (push) and an apply goroutine answers it; a connection has at most
// maxPushJobs of them at once, and answers them in order.
type pushJob struct {
	done chan struct{} // closed once the job's answer is sent, or the connection given up
	keep bool          // set before done is closed: false ends the connection
	// next is the device's last seq once the job has committed, as the
	// next job may assume (core.Tx.ApplyChangesAfter); 0 if it cannot.
	next uint64
}

// errPushEnded is the connection's cause of end when answering a push
// failed.
var errPushEnded = errors.New("edgesync: push could not be answered")

// maxPushJobs bounds the push batches of one connection applied at once:
// the one committing and the next, which writes its rows meanwhile.
const maxPushJobs = 2

// wait waits for j and reports whether the connection goes on.
func (j *pushJob) wait() bool {
	<-j.done
	return j.keep
}

// drain waits for the connection's push jobs and reports whether it goes
// on: every other answer is sent after theirs, in the order the messages
// came. Reader goroutine only.
func (cc *srvConn) drain() bool {
	j := cc.last
	cc.last = nil
	return j == nil || j.wait()
}

// push starts applying a push batch and reports whether the connection
// goes on. The batch is applied in its own goroutine, so the next one can
// be read and start while this one commits: it assumes the device's last
// seq is this batch's last (core.Tx.ApplyChangesAfter), writes its rows,
// and waits for this batch only where the store checks that assumption,
// before its own commit. Answers go out in order: a job sends its ack or
// error once the job before it has sent its own. Reader goroutine only.
func (cc *srvConn) push(m *pushMsg, log *slog.Logger) bool {
	s, tok := cc.s, cc.tok
	if len(m.Changes) > s.cfg.MaxBatch {
		return cc.drain() && cc.sendErr(&Error{Code: CodeTooLarge, Batch: m.Batch,
			Message: fmt.Sprintf("%d changes in one batch, max %d", len(m.Changes), s.cfg.MaxBatch)}) == nil
	}
	if s.horizon && !cc.caught.IsZero() && core.PastHorizon(cc.caught, s.cfg.Now(), s.cfg.TombstoneHorizon) {
		return cc.drain() && cc.sendErr(&Error{Code: CodeResyncRequired, Batch: m.Batch, Message: fmt.Sprintf(
			"device %s last caught up with the server at %s, longer ago than the tombstone horizon (%s); "+
				"its edits could resurrect deleted memories: start it over from a fresh database",
			tok.Device, cc.caught.UTC().Format(time.RFC3339), s.cfg.TombstoneHorizon)}) == nil
	}
	b := &pushBatch{msg: m, results: make([]core.ApplyResult, len(m.Changes)), reasons: make([]string, len(m.Changes)),
		apply: make([]core.Change, 0, len(m.Changes)), idx: make([]int, 0, len(m.Changes))}
	// clean: the batch may run beside the one before it, and the one after
	// may run beside it. Its changes are one run of core's merge, in
	// sequence, and all of memories: what their merge reads (the memory
	// rows, locked until the writer of each commits, and the project,
	// which only project changes write) cannot be written by an
	// uncommitted batch before it, so it reads what it would have read
	// after that batch.
	clean := true
	for i, c := range m.Changes {
		reason := ""
		switch {
		case c.Device != tok.Device:
			// Not part of the token's device sequence: refuse it without
			// recording anything under another device's name.
			b.results[i] = core.ApplyResult{Device: c.Device, Seq: c.Seq, Status: core.StatusRejected,
				Reason: fmt.Sprintf("device: change is from %q but the token is for %q", c.Device, tok.Device)}
			clean = false
			continue
		case c.Kind == kindOversize:
			reason = "size: change exceeds the message size limit; it was not sent"
		case c.ProjectID != tok.ProjectID:
			reason = fmt.Sprintf("project_id: change is for project %s but the token is for %s", c.ProjectID, tok.ProjectID)
		}
		if reason != "" || !isMemoryKind(c.Kind) || len(b.apply) > 0 && c.Seq != b.apply[len(b.apply)-1].Seq+1 {
			clean = false
		}
		b.reasons[i] = reason
		b.apply = append(b.apply, c)
		b.idx = append(b.idx, i)
	}
	prev := cc.last
	if prev != nil {
		select {
		case <-prev.done: // answered: nothing to assume
			if !prev.keep {
				return false
			}
			prev, cc.last = nil, nil
		default:
		}
	}
	if prev != nil && (!clean || prev.next == 0) {
		// Nothing to assume, or nothing this batch could assume safely in
		// one run: apply it after the previous one.
		if !cc.drain() {
			return false
		}
		prev = nil
	}
	select {
	case cc.jobs <- struct{}{}:
	case <-cc.ctx.Done():
		return false
	}
	j := &pushJob{done: make(chan struct{})}
	if clean && len(b.apply) > 0 {
		j.next = b.apply[len(b.apply)-1].Seq
	}
	cc.last = j
	cc.jobWG.Add(1)
	go func() {
		defer cc.jobWG.Done()
		defer func() { <-cc.jobs }()
		defer close(j.done)
		if j.keep = cc.applyPush(b, prev, log); !j.keep {
			cc.cancel(errPushEnded) // the reader's Read returns, and the connection ends
		}
	}()
	return true
}

// isMemoryKind reports whether k is a change to a memory.
func isMemoryKind(k core.Kind) bool {
	switch k {
	case core.KindMemoryPut, core.KindMemoryAccess, core.KindMemoryState, core.KindMemoryDelete:
		return true
	}
	return false
}

// pushBatch is a push message split for applying: results holds the
// answers for the changes refused outright, apply the others (their
// indexes in the message in idx, and reasons[idx] says why one is
// recorded rejected).
type pushBatch struct {
	msg     *pushMsg
	results []core.ApplyResult
	reasons []string
	apply   []core.Change
	idx     []int
}

// applyPush applies b and answers it, after prev (nil: none) has been
// answered, and reports whether the connection goes on. With prev, b is
// first applied assuming prev commits; if that assumption fails, it is
// applied again once prev is done.
func (cc *srvConn) applyPush(b *pushBatch, prev *pushJob, log *slog.Logger) bool {
	s, tok := cc.s, cc.tok
	ctx, cancel := cc.opCtx()
	defer cancel()
	var res []core.ApplyResult
	var err error
	if prev != nil {
		res, err = cc.update(ctx, b, prev.next, true)
		if errors.Is(err, core.ErrSeqGap) {
			if !prev.wait() {
				return false
			}
			prev = nil
			res, err = cc.update(ctx, b, 0, false)
		}
	} else {
		res, err = cc.update(ctx, b, 0, false)
	}
	if prev != nil && !prev.wait() {
		return false // committed, never acknowledged: the edge resends it, a duplicate
	}
	m := b.msg
	if errors.Is(err, core.ErrSeqGap) {
		last, lerr := s.lastSeq(ctx, tok.Device)
		if lerr != nil {
			return cc.sendErr(&Error{Code: CodeInternal, Batch: m.Batch, Message: "server unavailable"}) == nil
		}
		return cc.sendErr(&Error{Code: CodeSeqGap, Batch: m.Batch, LastSeq: last, Message: err.Error()}) == nil
	}
	if err != nil {
		log.Error("sync: push failed", "batch", m.Batch, "err", err)
		return cc.sendErr(&Error{Code: CodeInternal, Batch: m.Batch, Message: "server failed to apply the batch"}) == nil
	}
	fresh := false
	var last uint64
	for j, i := range b.idx {
		b.results[i] = res[j]
		fresh = fresh || !res[j].Duplicate
		last = max(last, res[j].Seq)
	}
	if s.cfg.AfterCommit != nil {
		if err := s.cfg.AfterCommit(tok.Device, m.Batch); err != nil {
			log.Warn("sync: failpoint after commit", "batch", m.Batch, "err", err)
			return false
		}
	}
	if fresh {
		_ = s.notifier.Notify(ctx, tok.ProjectID, tok.Device)
	}
	return cc.send(MsgAck, &ackMsg{Batch: m.Batch, Results: b.results, LastSeq: last}) == nil
}

// update applies b in one transaction. If assume, b's changes follow a
// device's last seq of after, which the store checks before the commit.
func (cc *srvConn) update(ctx context.Context, b *pushBatch, after uint64, assume bool) ([]core.ApplyResult, error) {
	res := make([]core.ApplyResult, 0, len(b.apply))
	err := cc.s.db.Update(ctx, func(tx *core.Tx) error {
		res = res[:0]
		if assume { // one run, nothing recorded rejected (push)
			r, err := tx.ApplyChangesAfter(ctx, b.apply, cc.tok.Device, after)
			res = append(res, r...)
			return err
		}
		// Runs of changes sync accepts go to core's merge; a change sync
		// refuses is recorded rejected in place, so the order (and the
		// device's gapless sequence) is kept.
		run := 0
		flush := func(end int) error {
			if end == run {
				return nil
			}
			r, err := tx.ApplyChanges(ctx, b.apply[run:end])
			res = append(res, r...)
			run = end
			return err
		}
		for j := range b.apply {
			reason := b.reasons[b.idx[j]]
			if reason == "" {
				continue
			}
			if err := flush(j); err != nil {
				return err
			}
			r, err := tx.RecordRejected(ctx, b.apply[j], reason)
			if err != nil {
				return err
			}
			res = append(res, r)
			run = j + 1
		}
		return flush(len(b.apply))
	})
	return res, err
}

func changeSize(c *core.Change) int {
	return len(c.Payload) + 4*len(c.Vector) + len(c.Device) + len(c.Kind) + 160
}

func (cc *srvConn) pull(m *pullMsg, log *slog.Logger) bool {
	s, tok := cc.s, cc.tok
	limit := m.Limit
	if limit <= 0 || limit > s.cfg.MaxBatch {
		limit = s.cfg.MaxBatch
	}
	budget := int(s.cfg.ReadLimit) - 64<<10
	ctx, cancel := cc.opCtx()
	defer cancel()
	start := s.cfg.Now() // every change committed before this is at or before the end of the log read below
	out := []core.Change{}
	next, size, more := max(m.After, 0), 0, false
	const maxPages = 20
	top := min(maxLogPage, s.db.Limits().MaxK)
	page := min(firstLogPage, top)
scan:
	for pages := 0; ; pages, page = pages+1, min(2*page, top) {
		if pages == maxPages {
			more = true
			break
		}
		cs, err := s.db.Changes(ctx, next, page, tok.Device)
		if err != nil {
			log.Error("sync: pull failed", "err", err)
			return cc.sendErr(&Error{Code: CodeInternal, Req: m.Req, Message: "server failed to read changes"}) == nil
		}
		for i := range cs {
			c := &cs[i]
			if c.ProjectID != tok.ProjectID || c.Status == core.StatusRejected {
				next = c.Pos
				continue
			}
			n := changeSize(c)
			if len(out) >= limit || len(out) > 0 && size+n > budget {
				more = true
				break scan
			}
			next = c.Pos
			out = append(out, *c)
			size += n
		}
		if len(cs) < page {
			break
		}
	}
	if !more && s.horizon {
		if err := s.recordCaughtUp(ctx, tok.Device, start); err != nil {
			log.Warn("sync: recording the catch-up time failed", "err", err)
		} else if start.After(cc.caught) {
			cc.caught = start
		}
	}
	return cc.send(MsgChanges, &changesMsg{Req: m.Req, Changes: out, Next: next, More: more}) == nil
}

// Shutdown stops accepting connections, lets every in-flight batch commit
// and be acknowledged, closes each connection with 1001 (going away) and
// waits for their goroutines. If ctx ends first it closes what is left at
// once and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	conns := make([]*srvConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, cc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc.procMu.Lock()
			cc.closing = true
			cc.procMu.Unlock()
			cc.jobWG.Wait() // the pushes being applied are answered first
			_ = cc.ws.Close(websocket.StatusGoingAway, "server shutting down")
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		for _, cc := range conns {
			_ = cc.ws.CloseNow()
		}
		<-done
		return fmt.Errorf("edgesync: shutdown: %w", ctx.Err())
	}
}

// Conns returns the number of live connections.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// String describes the server for logs.
func (s *Server) String() string {
	return "edgesync.Server(conns=" + strconv.Itoa(s.Conns()) + ")"
}
