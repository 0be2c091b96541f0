// Package web is athena-edge's browser demo: the page (HTML, CSS and
// JavaScript, embedded in the binary) and the browser build of the core
// (athena.wasm, GOOS=js, from ./hosts/wasm/js, with the Go toolchain's
// wasm_exec.js beside it).
//
// The page is committed and embedded; the wasm is a build output and is
// not. [Build] compiles it with the Go toolchain from the source tree
// (which is what `go run ./cmd/athena-edge serve` has at hand): on a warm
// Go build cache that takes a second or two, the first time about a minute.
// [Prebuilt] serves a directory made by scripts/build-web.sh instead, for a
// binary that runs away from its source tree.
//
// [Handler] serves both at / with a strict Content-Security-Policy: no
// inline script or style, scripts from the page's origin only, WebAssembly
// compilation allowed ('wasm-unsafe-eval'), connections to the page's own
// origin (HTTP and WebSocket) only.
//
// Package web does not know about sync or tokens: the demo's API
// (/v1/demo/...) is wired by cmd/athena-edge.
package web

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

//go:embed static
var staticFS embed.FS

// Module is the module path the source tree must have for Build.
const Module = "github.com/athena-edge/athena-edge"

// The artifacts' file names, in a Prebuilt or a Build directory.
const (
	WasmFile     = "athena.wasm"
	WasmExecFile = "wasm_exec.js"
)

// Wasm is the browser build: ready at once ([Prebuilt]) or once a
// background build finishes ([Build]). Safe for concurrent use.
type Wasm struct {
	done chan struct{}
	dir  string
	err  error
	took time.Duration
	// Set when done without error.
	wasm, gz, exec asset
}

type asset struct {
	data []byte
	etag string
}

// Prebuilt serves the artifacts in dir (athena.wasm and wasm_exec.js, as
// scripts/build-web.sh writes them).
func Prebuilt(dir string) (*Wasm, error) {
	w := &Wasm{done: make(chan struct{}), dir: dir}
	defer close(w.done)
	if w.err = w.load(); w.err != nil {
		return nil, w.err
	}
	return w, nil
}

// BuildConfig configures Build. The zero value builds from the working
// directory's module into the user cache directory.
type BuildConfig struct {
	// Source is a directory inside the athena-edge source tree (default:
	// the working directory).
	Source string
	// Out receives athena.wasm and wasm_exec.js (default:
	// os.UserCacheDir()/athena-edge/web).
	Out string
	// Go is the go command (default: "go" from PATH).
	Go string
	// Env is added to the go command's environment.
	Env []string
}

// Build compiles the browser core in the background and returns at once;
// Handler's wasm requests wait for it. Use Wait to learn the outcome.
func Build(ctx context.Context, cfg BuildConfig) *Wasm {
	w := &Wasm{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		start := time.Now()
		w.err = w.build(ctx, cfg)
		if w.err == nil {
			w.err = w.load()
		}
		w.took = time.Since(start)
	}()
	return w
}

// Wait waits for the build (or ctx) and returns its error, the directory
// the artifacts are in and how long the build took.
func (w *Wasm) Wait(ctx context.Context) (dir string, took time.Duration, err error) {
	select {
	case <-w.done:
		return w.dir, w.took, w.err
	case <-ctx.Done():
		return "", 0, ctx.Err()
	}
}

// Size is the size of athena.wasm and of its gzip encoding (0 before the
// build finishes).
func (w *Wasm) Size() (raw, gz int) {
	select {
	case <-w.done:
		return len(w.wasm.data), len(w.gz.data)
	default:
		return 0, 0
	}
}

// FindSource returns the root of the athena-edge source tree holding dir:
// the nearest directory above it with a go.mod of module Module.
func FindSource(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if f := strings.Fields(l); len(f) == 2 && f[0] == "module" && strings.Trim(f[1], `"`) == Module {
					return d, nil
				}
			}
			return "", fmt.Errorf("web: %s/go.mod is not module %s", d, Module)
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("web: %s is not inside the athena-edge source tree", dir)
		}
		d = parent
	}
}

func (w *Wasm) build(ctx context.Context, cfg BuildConfig) error {
	if cfg.Source == "" {
		cfg.Source = "."
	}
	root, err := FindSource(cfg.Source)
	if err != nil {
		return fmt.Errorf("%w (build it with scripts/build-web.sh and pass --web-dist DIR)", err)
	}
	if cfg.Out == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("web: %w", err)
		}
		cfg.Out = filepath.Join(cache, "athena-edge", "web")
	}
	if cfg.Go == "" {
		if cfg.Go, err = exec.LookPath("go"); err != nil {
			return fmt.Errorf("web: building the browser core needs the go command: %w", err)
		}
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return fmt.Errorf("web: %w", err)
	}
	w.dir = cfg.Out
	run := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, cfg.Go, args...)
		cmd.Dir = root
		cmd.Env = append(append(os.Environ(), cfg.Env...), "GOOS=js", "GOARCH=wasm", "GOFLAGS=")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("web: go %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
		}
		return out, nil
	}
	// Temporary names and renames: several serve processes may share Out.
	tmp := filepath.Join(cfg.Out, fmt.Sprintf(".%s.%d", WasmFile, os.Getpid()))
	defer os.Remove(tmp)
	if _, err := run(BuildArgs(tmp)...); err != nil {
		return err
	}
	goroot, err := run("env", "GOROOT")
	if err != nil {
		return err
	}
	execJS, err := ReadWasmExec(strings.TrimSpace(string(goroot)))
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(cfg.Out, WasmExecFile), execJS); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(cfg.Out, WasmFile))
}

// BuildArgs are the go command's arguments that build the browser core
// into out (run in the source tree with GOOS=js GOARCH=wasm). The flags
// make the output depend on the source and the Go version only.
func BuildArgs(out string) []string {
	return []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", out, "./hosts/wasm/js"}
}

// ReadWasmExec returns the JavaScript support file of the Go toolchain at
// goroot (lib/wasm since Go 1.24, misc/wasm before).
func ReadWasmExec(goroot string) ([]byte, error) {
	var errs []error
	for _, p := range []string{"lib/wasm/wasm_exec.js", "misc/wasm/wasm_exec.js"} {
		b, err := os.ReadFile(filepath.Join(goroot, p))
		if err == nil {
			return b, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("web: wasm_exec.js: %w", errors.Join(errs...))
}

func writeAtomic(path string, b []byte) error {
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("web: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("web: %w", err)
	}
	return nil
}

// load reads the artifacts into memory and gzips the wasm (3-4× smaller).
func (w *Wasm) load() error {
	var err error
	if w.wasm, err = readAsset(filepath.Join(w.dir, WasmFile)); err != nil {
		return err
	}
	if w.exec, err = readAsset(filepath.Join(w.dir, WasmExecFile)); err != nil {
		return err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	_, _ = zw.Write(w.wasm.data)
	_ = zw.Close()
	w.gz = asset{data: buf.Bytes(), etag: strings.TrimSuffix(w.wasm.etag, `"`) + `-gz"`}
	return nil
}

func readAsset(path string) (asset, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return asset{}, fmt.Errorf("web: %w", err)
	}
	return newAsset(b), nil
}

func newAsset(b []byte) asset {
	h := sha256.Sum256(b)
	return asset{data: b, etag: `"` + hex.EncodeToString(h[:12]) + `"`}
}

// CSP is the Content-Security-Policy of every page response. connect-src
// names the WebSocket schemes explicitly for browsers whose 'self' does
// not cover ws: and wss:.
func CSP(host string) string {
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self' 'wasm-unsafe-eval'",
		"style-src 'self'",
		"img-src 'self' data:",
		"connect-src 'self' ws://" + host + " wss://" + host,
		"worker-src 'self'",
		"manifest-src 'self'",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
}

// SecurityHeaders sets the headers every demo response carries.
func SecurityHeaders(h http.Header, host string) {
	h.Set("Content-Security-Policy", CSP(host))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// Handler serves the demo: the embedded page at /, and /athena.wasm and
// /wasm_exec.js from w (waiting for a running build; 503 if it failed).
func Handler(w *Wasm) http.Handler {
	page := map[string]asset{}
	types := map[string]string{}
	_ = fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		name := "/" + strings.TrimPrefix(p, "static/")
		page[name] = newAsset(b)
		types[name] = contentType(name)
		return nil
	})
	page["/"] = page["/index.html"]
	types["/"] = types["/index.html"]
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		SecurityHeaders(rw.Header(), r.Host)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			rw.Header().Set("Allow", "GET, HEAD")
			http.Error(rw, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		switch r.URL.Path {
		case "/" + WasmFile, "/" + WasmExecFile:
			select {
			case <-w.done:
			case <-r.Context().Done():
				return
			}
			if w.err != nil {
				http.Error(rw, "the browser core is not available: "+w.err.Error(), http.StatusServiceUnavailable)
				return
			}
			a, typ := w.exec, "text/javascript; charset=utf-8"
			if r.URL.Path == "/"+WasmFile {
				a, typ = w.wasm, "application/wasm"
				rw.Header().Add("Vary", "Accept-Encoding")
				if acceptsGzip(r) {
					a = w.gz
					rw.Header().Set("Content-Encoding", "gzip")
				}
			}
			serve(rw, r, a, typ)
		default:
			a, ok := page[r.URL.Path]
			if !ok {
				http.NotFound(rw, r)
				return
			}
			serve(rw, r, a, types[r.URL.Path])
		}
	})
}

func serve(rw http.ResponseWriter, r *http.Request, a asset, typ string) {
	h := rw.Header()
	h.Set("Content-Type", typ)
	h.Set("ETag", a.etag)
	h.Set("Cache-Control", "no-cache") // revalidate: a rebuilt core or a new page shows on reload
	if r.Header.Get("If-None-Match") == a.etag {
		rw.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(a.data)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = io.Copy(rw, bytes.NewReader(a.data))
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.TrimSpace(q) != "q=0" {
			return true
		}
	}
	return false
}

func contentType(name string) string {
	switch filepath.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".json", ".webmanifest":
		return "application/json"
	}
	return "application/octet-stream"
}
