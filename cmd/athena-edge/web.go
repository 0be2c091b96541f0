package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/athena-edge/athena-edge/core"
	edgesync "github.com/athena-edge/athena-edge/sync"
	"github.com/athena-edge/athena-edge/web"
)

// webOptions are serve's flags for the browser demo.
type webOptions struct {
	demo triBool // --demo: the demo's token-less endpoints; default on for a loopback --addr
	dist string  // --web-dist: prebuilt athena.wasm + wasm_exec.js instead of building at start
}

func (o *webOptions) register(fs *flag.FlagSet) {
	fs.Var(&o.demo, "demo", "serve the browser demo's endpoints, which let any client that reaches --addr become a device "+
		"of project default (default: on when --addr is a loopback address)")
	fs.StringVar(&o.dist, "web-dist", "", "serve the browser core from this directory (scripts/build-web.sh) instead of building it at start")
}

// triBool is a boolean flag that knows whether it was set.
type triBool struct{ set, v bool }

func (b *triBool) String() string   { return strconv.FormatBool(b.v) }
func (b *triBool) IsBoolFlag() bool { return true }
func (b *triBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	b.set, b.v = true, v
	return nil
}

// Demo API paths (only with --demo).
const (
	pathDemoTicket   = "/v1/demo/ticket"
	pathDemoMemories = "/v1/demo/memories"
)

// registerWeb mounts the browser demo: the page and the browser core at /
// (always), and with demo on, the two endpoints the page needs because it
// has no token: a ticket for its device, and a read-only view of the
// server's memories of project default. The browser core is built in the
// background from the source tree the command runs in, unless opts.dist
// names a prebuilt one.
func registerWeb(ctx context.Context, e *env, mux *http.ServeMux, db *core.DB, srv *edgesync.Server, opts webOptions,
	addr string, log *slog.Logger) error {
	var wasm *web.Wasm
	if opts.dist != "" {
		var err error
		if wasm, err = web.Prebuilt(opts.dist); err != nil {
			return fmt.Errorf("serve: --web-dist: %w", err)
		}
	} else {
		src := e.getenv("PWD")
		if src == "" {
			src, _ = os.Getwd()
		}
		wasm = web.Build(ctx, web.BuildConfig{Source: src})
		go func() {
			dir, took, err := wasm.Wait(ctx)
			switch {
			case ctx.Err() != nil:
			case err != nil:
				log.Warn("web: the browser core is not available; the page will say so", "err", err)
			default:
				raw, gz := wasm.Size()
				log.Info("web: browser core built", "dir", dir, "bytes", raw, "gzip", gz, "took", took.Round(time.Millisecond))
			}
		}()
	}
	mux.Handle("/", web.Handler(wasm))

	loopback := isLoopback(addr)
	if !opts.demo.set {
		opts.demo.v = loopback
	}
	if !opts.demo.v {
		return nil
	}
	d := &demo{db: db, srv: srv, loopback: loopback, tokens: map[string]string{}}
	mux.HandleFunc(pathDemoTicket, d.guard(d.ticket))
	mux.HandleFunc(pathDemoMemories, d.guard(d.memories))
	log.Warn("web: demo endpoints on: any client that reaches this address can become a device of project default",
		"addr", addr, "loopback", loopback)
	return nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// demo serves the demo's endpoints. Safe for concurrent use.
type demo struct {
	db       *core.DB
	srv      *edgesync.Server
	loopback bool

	mu     sync.Mutex
	tokens map[string]string // device → token plaintext, minted by this process
}

// maxDemoDevices caps the tokens one serve process mints.
const maxDemoDevices = 1000

// demoDevice is the shape of a browser's device ID: the page makes
// "web-" + a random UUID. Only such devices get demo tokens, so the
// endpoint can never mint a token for a CLI edge's device.
var demoDevice = regexp.MustCompile(`^web-[0-9a-f-]{8,64}$`)

// guard applies the checks every demo endpoint shares: same origin (a
// page elsewhere cannot use it) and, on a loopback address, a loopback
// Host header (a DNS-rebinding page cannot either).
func (d *demo) guard(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		web.SecurityHeaders(w.Header(), r.Host)
		w.Header().Set("Cache-Control", "no-store")
		if d.loopback && !loopbackHost(r.Host) {
			http.Error(w, "forbidden: the demo answers to localhost names only", http.StatusForbidden)
			return
		}
		if o := r.Header.Get("Origin"); o != "" {
			u, err := url.Parse(o)
			if err != nil || !strings.EqualFold(u.Host, r.Host) {
				http.Error(w, "forbidden: cross-origin", http.StatusForbidden)
				return
			}
		}
		next(w, r)
	}
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ticket: POST {"device": "web-..."} → the server's own ticket response
// ({"ticket", "expires_in_ms"}) for a token of that device in project
// default, minted on first use and kept in memory.
func (d *demo) ticket(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var req struct {
		Device string `json:"device"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1024)).Decode(&req); err != nil {
		http.Error(w, "bad request: want {\"device\": \"web-...\"}", http.StatusBadRequest)
		return
	}
	if !demoDevice.MatchString(req.Device) || req.Device == d.db.Device() {
		http.Error(w, "forbidden: a demo device is web- and a UUID", http.StatusForbidden)
		return
	}
	tok, status, err := d.token(r.Context(), req.Device)
	if err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	// The ticket comes from the sync server's own endpoint, called in
	// process with the device's token, so it is the one the handshake
	// accepts (single use, 30 s).
	in, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, edgesync.PathTicket, nil)
	in.Header.Set("Authorization", "Bearer "+tok)
	in.RemoteAddr = r.RemoteAddr
	rec := &recorder{h: http.Header{}, code: http.StatusOK}
	d.srv.ServeHTTP(rec, in)
	if rec.code != http.StatusOK {
		http.Error(w, "ticket refused: "+strings.TrimSpace(rec.body.String()), rec.code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(rec.body.Bytes())
}

// token returns the device's demo token, minting one on first use. Tokens
// minted for the device by an earlier serve process (whose plaintext is
// gone) are revoked first, so they do not pile up.
func (d *demo) token(ctx context.Context, device string) (string, int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t, ok := d.tokens[device]; ok {
		return t, 0, nil
	}
	if len(d.tokens) >= maxDemoDevices {
		return "", http.StatusTooManyRequests, errors.New("too many demo devices; restart serve")
	}
	old, err := edgesync.ListTokens(ctx, d.db)
	if err != nil {
		return "", http.StatusInternalServerError, errors.New("internal error")
	}
	for _, t := range old {
		if t.Device == device && !t.Revoked() {
			if _, err := edgesync.RevokeToken(ctx, d.db, t.ID); err != nil {
				return "", http.StatusInternalServerError, errors.New("internal error")
			}
		}
	}
	plain, _, err := edgesync.CreateToken(ctx, d.db, core.DefaultProjectName, device)
	if err != nil {
		return "", http.StatusInternalServerError, errors.New("internal error")
	}
	d.tokens[device] = plain
	return plain, 0, nil
}

// recorder is a minimal in-process http.ResponseWriter.
type recorder struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) WriteHeader(code int)        { r.code = code }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }

// demoMemory is a server memory as the demo's live view shows it.
type demoMemory struct {
	ID        core.ID  `json:"id"`
	Content   string   `json:"content"`
	Type      string   `json:"type"`
	Tags      []string `json:"tags"`
	Device    string   `json:"device"` // the device whose write set its fields
	CreatedAt string   `json:"created_at"`
	UpdatedAt string   `json:"updated_at"`
}

type demoDeviceInfo struct {
	Device    string `json:"device"`
	Kind      string `json:"kind"` // browser (a demo tab) or edge
	CreatedAt string `json:"created_at"`
	Revoked   bool   `json:"revoked"`
}

// memories: GET ?limit=N (default 50, at most 500) → the newest live
// memories of project default on the server, with the device each came
// from, and the devices that hold tokens for the project.
func (d *demo) memories(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	limit := 50
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			http.Error(w, "bad limit", http.StatusBadRequest)
			return
		}
		limit = min(n, 500)
	}
	ctx := r.Context()
	pid := core.ProjectIDFor(core.DefaultProjectName)
	out := struct {
		Project      string           `json:"project"`
		ServerDevice string           `json:"server_device"`
		Memories     []demoMemory     `json:"memories"`
		Devices      []demoDeviceInfo `json:"devices"`
		At           string           `json:"at"`
	}{Project: core.DefaultProjectName, ServerDevice: d.db.Device(), Memories: []demoMemory{}, Devices: []demoDeviceInfo{},
		At: time.Now().UTC().Format(time.RFC3339Nano)}
	ms, err := d.db.Memories(ctx, core.MemoryFilter{ProjectID: pid, States: core.LiveStates(), Newest: true, Limit: limit})
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	for _, m := range ms {
		tags := m.Tags
		if tags == nil {
			tags = []string{}
		}
		out.Memories = append(out.Memories, demoMemory{ID: m.ID, Content: m.Content, Type: string(m.MemoryType), Tags: tags,
			Device: m.Version.Device, CreatedAt: m.CreatedAt.UTC().Format(time.RFC3339), UpdatedAt: m.UpdatedAt.UTC().Format(time.RFC3339)})
	}
	toks, err := edgesync.ListTokens(ctx, d.db)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	for _, t := range toks {
		if t.ProjectID != pid {
			continue
		}
		kind := "edge"
		if demoDevice.MatchString(t.Device) {
			kind = "browser"
		}
		out.Devices = append(out.Devices, demoDeviceInfo{Device: t.Device, Kind: kind,
			CreatedAt: t.CreatedAt.UTC().Format(time.RFC3339), Revoked: t.Revoked()})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}
