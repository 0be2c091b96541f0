package main

import (
	"net/http"

	"github.com/athena-edge/athena-edge/core"
	edgesync "github.com/athena-edge/athena-edge/sync"
)

// registerWeb mounts the browser demo at /. Until the demo is built it
// answers with a short page that says where the sync endpoint is.
func registerWeb(mux *http.ServeMux, db *core.DB, srv *edgesync.Server) {
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("athena-edge: the sync endpoint is /v1/sync; health is /healthz\n"))
	})
}
