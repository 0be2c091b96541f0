package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/athena-edge/athena-edge/hosts/native"
	edgesync "github.com/athena-edge/athena-edge/sync"
)

func syncCommand() *command {
	var (
		server, token, caFile string
		watch, noConsolidate  bool
	)
	return &command{
		name:    "sync",
		summary: "push local changes to the server and pull the rest until both are empty (--watch keeps going); 'sync status' works offline",
		usage:   "--server URL --token T [--watch] [--ca FILE] | status",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&server, "server", "", "sync endpoint, ws://HOST/v1/sync or wss://HOST/v1/sync (or $ATHENA_SYNC_URL)")
			fs.StringVar(&token, "token", "", "device token from 'athena-edge token create' (or $ATHENA_SYNC_TOKEN)")
			fs.StringVar(&caFile, "ca", "", "PEM file of CA certificates to trust for wss:// (default: the system roots)")
			fs.BoolVar(&watch, "watch", false, "keep syncing until interrupted")
			fs.BoolVar(&noConsolidate, "no-consolidate", false, "with --watch: do not consolidate in the background")
		},
		run: func(e *env, args []string) error {
			e.serving = watch
			h, err := e.open()
			if err != nil {
				return err
			}
			defer h.Close()
			if len(args) == 1 && args[0] == "status" {
				st, err := edgesync.ReadStatus(e.ctx, h.DB)
				if err != nil {
					return err
				}
				if e.json {
					return printJSON(e.stdout, st)
				}
				printSyncStatus(e, st)
				return nil
			}
			if len(args) > 0 {
				return usageErr("sync takes flags, or the subcommand status")
			}
			if server == "" {
				server = e.getenv("ATHENA_SYNC_URL")
			}
			if token == "" {
				token = e.getenv("ATHENA_SYNC_TOKEN")
			}
			if server == "" || token == "" {
				return usageErr("sync needs --server URL and --token T")
			}
			hc := http.DefaultClient
			if caFile != "" {
				pem, err := os.ReadFile(caFile)
				if err != nil {
					return fmt.Errorf("--ca: %w", err)
				}
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					return usageErr("--ca %s holds no PEM certificates", caFile)
				}
				hc = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
			}
			bar := newProgress(e.stderr, "sync", 0)
			c := edgesync.NewClient(edgesync.ClientConfig{DB: h.DB, ServerURL: server, Token: token, HTTPClient: hc,
				Logger: slog.New(slog.NewTextHandler(e.stderr, nil)),
				Progress: func(p edgesync.Progress) {
					bar.total = int64(p.PushTotal)
					bar.set(int64(p.Pushed))
				}})
			if watch {
				var wg sync.WaitGroup
				if !noConsolidate {
					wg.Add(1)
					go func() {
						defer wg.Done()
						_ = native.RunConsolidator(e.ctx, h.DB, native.ConsolidatorConfig{})
					}()
				}
				fmt.Fprintf(e.stderr, "syncing device %s with %s until interrupted\n", h.DB.Device(), server)
				err := c.Watch(e.ctx)
				wg.Wait()
				if errors.Is(err, e.ctx.Err()) {
					return nil
				}
				return err
			}
			st, err := c.Sync(e.ctx)
			bar.done(int64(st.Pushed))
			if err != nil {
				if errors.Is(err, edgesync.ErrDeviceMismatch) {
					return fmt.Errorf("sync: %w (this edge is device %s; create its token with --device %s)", err, h.DB.Device(), h.DB.Device())
				}
				return fmt.Errorf("sync: %w", err)
			}
			if e.json {
				return printJSON(e.stdout, st)
			}
			_, err = fmt.Fprintf(e.stdout, "pushed %d (applied %d, superseded %d, rejected %d, duplicates %d), pulled %d; %.0f bytes per change\n",
				st.Pushed, st.Applied, st.Superseded, st.Rejected, st.Duplicates, st.Pulled, st.BytesPerChange())
			return err
		},
	}
}

func printSyncStatus(e *env, st edgesync.LocalStatus) {
	fmt.Fprintf(e.stdout, "device %s: %d changes made here\n", st.Device, st.LastSeq)
	for _, s := range st.Servers {
		fmt.Fprintf(e.stdout, "server %s (%s): acknowledged %d, pending %d, pulled %d (cursor %d), rejected %d\n",
			s.ServerID, s.URL, s.Acked, s.Pending, s.Pulled, s.Cursor, len(s.Rejected))
		for _, d := range s.Rejected {
			fmt.Fprintf(e.stdout, "  rejected %s: %s\n", deadLetterName(d), strings.TrimSpace(d.Reason))
		}
	}
	if len(st.Servers) == 0 {
		fmt.Fprintln(e.stdout, "never synced")
	}
}

func deadLetterName(d edgesync.DeadLetter) string {
	return fmt.Sprintf("seq %d %s %s", d.Seq, d.Kind, d.EntityID)
}
