package web

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHandler(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, WasmFile), []byte("\x00asm fake"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, WasmExecFile), []byte("// go"), 0o644))
	w, err := Prebuilt(dir)
	require.NoError(t, err)
	h := Handler(w)
	tests := []struct {
		name, method, path, gzip string
		code                     int
		typ, encoding            string
	}{
		{name: "page", method: "GET", path: "/", code: 200, typ: "text/html; charset=utf-8"},
		{name: "script", method: "GET", path: "/app.js", code: 200, typ: "text/javascript; charset=utf-8"},
		{name: "service worker", method: "GET", path: "/sw.js", code: 200, typ: "text/javascript; charset=utf-8"},
		{name: "wasm", method: "GET", path: "/athena.wasm", code: 200, typ: "application/wasm"},
		{name: "wasm gzip", method: "GET", path: "/athena.wasm", gzip: "gzip, br", code: 200, typ: "application/wasm", encoding: "gzip"},
		{name: "wasm_exec", method: "GET", path: "/wasm_exec.js", code: 200, typ: "text/javascript; charset=utf-8"},
		{name: "unknown", method: "GET", path: "/nope", code: 404},
		{name: "post", method: "POST", path: "/", code: 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(tc.method, tc.path, nil)
			r.Host = "127.0.0.1:8080"
			if tc.gzip != "" {
				r.Header.Set("Accept-Encoding", tc.gzip)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			assert.Equal(t, tc.code, rec.Code)
			csp := rec.Header().Get("Content-Security-Policy")
			assert.Contains(t, csp, "script-src 'self' 'wasm-unsafe-eval'")
			assert.Contains(t, csp, "connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080")
			assert.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
			if tc.code == 200 {
				assert.Equal(t, tc.typ, rec.Header().Get("Content-Type"))
				assert.Equal(t, tc.encoding, rec.Header().Get("Content-Encoding"))
				etag := rec.Header().Get("ETag")
				require.NotEmpty(t, etag)
				r2 := httptest.NewRequest(tc.method, tc.path, nil)
				r2.Header.Set("If-None-Match", etag)
				r2.Header.Set("Accept-Encoding", tc.gzip)
				rec2 := httptest.NewRecorder()
				h.ServeHTTP(rec2, r2)
				assert.Equal(t, http.StatusNotModified, rec2.Code)
			}
		})
	}
}

// TestPageHasNoInlineCode: the CSP forbids inline script and style, and the
// page's script never parses strings as HTML.
func TestPageHasNoInlineCode(t *testing.T) {
	t.Parallel()
	html, err := staticFS.ReadFile("static/index.html")
	require.NoError(t, err)
	for _, bad := range []string{"<script>", "<style", " style=", "onclick=", "onload=", "javascript:"} {
		assert.False(t, strings.Contains(strings.ToLower(string(html)), bad), "index.html contains %s", bad)
	}
	js, err := staticFS.ReadFile("static/app.js")
	require.NoError(t, err)
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
		assert.False(t, strings.Contains(string(js), bad), "app.js contains %s", bad)
	}
}

func TestBuildOutsideTheSourceTree(t *testing.T) {
	t.Parallel()
	w := Build(t.Context(), BuildConfig{Source: t.TempDir(), Out: t.TempDir()})
	_, _, err := w.Wait(t.Context())
	require.ErrorContains(t, err, "not inside the athena-edge source tree")
	rec := httptest.NewRecorder()
	Handler(w).ServeHTTP(rec, httptest.NewRequest("GET", "/athena.wasm", nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Contains(t, rec.Body.String(), "--web-dist")
}

func TestFindSource(t *testing.T) {
	t.Parallel()
	root, err := FindSource(".")
	require.NoError(t, err)
	assert.FileExists(t, filepath.Join(root, "hosts", "wasm", "js", "main_js.go"))
}
