package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/hosts/native"
	edgesync "github.com/athena-edge/athena-edge/sync"
)

func serveCommand() *command {
	var (
		addr, certFile, keyFile string
		origins                 listFlag
		noConsolidate           bool
		horizon                 time.Duration
		webOpts                 webOptions
	)
	return &command{
		name:    "serve",
		summary: "run the sync server (/v1/sync, /v1/ticket, /healthz) and the browser demo (/) on Postgres when configured, else embedded SQLite",
		usage:   "[--addr 127.0.0.1:8080] [--tls-cert F --tls-key F] [--origin PATTERN] [--no-consolidate] [--tombstone-horizon 720h] [--demo] [--web-dist DIR]",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&addr, "addr", "127.0.0.1:8080", "listen address")
			fs.StringVar(&certFile, "tls-cert", "", "TLS certificate (PEM); with --tls-key, serve wss://")
			fs.StringVar(&keyFile, "tls-key", "", "TLS private key (PEM)")
			fs.Var(&origins, "origin", "allowed browser origins (path.Match patterns; repeatable)")
			fs.BoolVar(&noConsolidate, "no-consolidate", false, "do not consolidate projects in the background")
			fs.DurationVar(&horizon, "tombstone-horizon", 30*24*time.Hour,
				"keep deletes' tombstones this long, then purge them hourly; an edge offline longer must re-sync (0 keeps them forever)")
			webOpts.register(fs)
		},
		run: func(e *env, args []string) error {
			if len(args) > 0 {
				return usageErr("serve takes flags only")
			}
			if (certFile == "") != (keyFile == "") {
				return usageErr("--tls-cert and --tls-key go together")
			}
			e.serving = true
			h, err := e.open()
			if err != nil {
				return err
			}
			defer h.Close()
			log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			ctx, cancel := context.WithCancel(e.ctx)
			defer cancel()

			if horizon == 0 {
				horizon = -1 // edgesync: negative keeps tombstones forever
			}
			cfg := edgesync.ServerConfig{DB: h.DB, OriginPatterns: origins, Logger: log, TombstoneHorizon: horizon}
			if h.Selection.Kind == native.KindPostgres {
				n, err := edgesync.NewPGNotifier(ctx, edgesync.PGNotifierConfig{DSN: postgresDSN(h.Selection), Logger: log})
				if err != nil {
					return fmt.Errorf("serve: %w", err)
				}
				defer n.Close(context.WithoutCancel(ctx))
				cfg.Notifier = n
			}
			srv := edgesync.NewServer(cfg)
			mux := http.NewServeMux()
			mux.Handle("/v1/", srv)
			mux.Handle("/healthz", srv)
			if err := registerWeb(ctx, e, mux, h.DB, srv, webOpts, addr, log); err != nil {
				return err
			}

			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("serve: %w", err)
			}
			hs := &http.Server{Handler: mux, ReadHeaderTimeout: edgesync.DefaultReadHeaderTimeout,
				ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
			scheme := "http"
			if certFile != "" {
				scheme = "https"
			}
			fmt.Fprintf(e.stdout, "athena-edge serving %s at %s://%s/ (sync: %s://%s/v1/sync, device %s)\n",
				h.Selection.Where(), scheme, ln.Addr(), map[string]string{"http": "ws", "https": "wss"}[scheme], ln.Addr(), h.DB.Device())

			var wg sync.WaitGroup
			if !noConsolidate {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_ = native.RunConsolidator(ctx, h.DB, native.ConsolidatorConfig{Report: func(p core.Project, r core.ConsolidationReport, err error) {
						if err != nil {
							log.Warn("consolidation failed", "project", p.Name, "err", err)
							return
						}
						log.Info("consolidated", "project", p.Name, "writes", r.Writes, "merged", len(r.Merged), "clustered", len(r.Clustered))
					}})
				}()
			}
			if horizon > 0 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					t := time.NewTicker(time.Hour)
					defer t.Stop()
					for {
						if n, err := srv.PurgeTombstones(ctx); err != nil && ctx.Err() == nil {
							log.Warn("tombstone purge failed", "err", err)
						} else if n > 0 {
							log.Info("purged tombstones", "count", n)
						}
						select {
						case <-ctx.Done():
							return
						case <-t.C:
						}
					}
				}()
			}
			errc := make(chan error, 1)
			go func() {
				if certFile != "" {
					errc <- hs.ServeTLS(ln, certFile, keyFile)
				} else {
					errc <- hs.Serve(ln)
				}
			}()
			select {
			case err = <-errc:
			case <-ctx.Done():
			}
			// Graceful shutdown: stop accepting, let in-flight batches
			// commit and ack, then close.
			sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
			defer scancel()
			serr := srv.Shutdown(sctx)
			herr := hs.Shutdown(sctx)
			cancel()
			wg.Wait()
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve: %w", err)
			}
			return errors.Join(serr, herr)
		},
	}
}

// postgresDSN is the selection's Postgres connection string.
func postgresDSN(sel native.Selection) string {
	c := sel.Postgres
	if c.DSN != "" {
		return c.DSN
	}
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(orDefault(c.Host, "localhost"), strconv.Itoa(orInt(c.Port, 5432))),
		Path: "/" + orDefault(c.DBName, "athena")}
	if c.Password != "" {
		u.User = url.UserPassword(orDefault(c.User, "athena"), c.Password)
	} else {
		u.User = url.User(orDefault(c.User, "athena"))
	}
	return u.String()
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func orInt(n, d int) int {
	if n == 0 {
		return d
	}
	return n
}
