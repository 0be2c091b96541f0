package main

import (
	"flag"
	"fmt"

	edgesync "github.com/athena-edge/athena-edge/sync"
)

func tokenCommand() *command {
	var device string
	return &command{
		name:    "token",
		summary: "device tokens on the server's store: create (printed once; only its hash is kept), list, revoke ID",
		usage:   "create --project P --device NAME | list | revoke ID",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&device, "device", "", "device the token is for: the edge's device ID, see 'athena-edge doctor' (create)")
		},
		run: func(e *env, args []string) error {
			if len(args) == 0 {
				return usageErr("token needs a subcommand: create, list or revoke")
			}
			h, err := e.open()
			if err != nil {
				return err
			}
			defer h.Close()
			switch args[0] {
			case "create":
				project := e.project
				if len(args) != 1 || project == "" || device == "" {
					return usageErr("token create takes --project P and --device NAME")
				}
				plain, tok, err := edgesync.CreateToken(e.ctx, h.DB, project, device)
				if err != nil {
					return fmt.Errorf("token create: %w", err)
				}
				if e.json {
					return printJSON(e.stdout, map[string]any{"token": plain, "id": tok.ID, "device": tok.Device, "project_id": tok.ProjectID})
				}
				fmt.Fprintf(e.stdout, "%s\n", plain)
				fmt.Fprintf(e.stderr, "token %s for device %s on project %s; it is shown only once\n", tok.ID, tok.Device, project)
				return nil
			case "list":
				ts, err := edgesync.ListTokens(e.ctx, h.DB)
				if err != nil {
					return fmt.Errorf("token list: %w", err)
				}
				if e.json {
					return printJSON(e.stdout, ts)
				}
				for _, t := range ts {
					state := "active"
					if t.Revoked() {
						state = "revoked " + t.RevokedAt.Local().Format("2006-01-02 15:04")
					}
					fmt.Fprintf(e.stdout, "%s  %-24s %-12s %s\n", t.ID, t.Device, orNone(t.ProjectName), state)
				}
				return nil
			case "revoke":
				if len(args) != 2 {
					return usageErr("token revoke takes the token ID from 'token list'")
				}
				t, err := edgesync.RevokeToken(e.ctx, h.DB, args[1])
				if err != nil {
					return fmt.Errorf("token revoke: %w", err)
				}
				if e.json {
					return printJSON(e.stdout, t)
				}
				_, err = fmt.Fprintf(e.stdout, "revoked %s (device %s)\n", t.ID, t.Device)
				return err
			}
			return usageErr("unknown token subcommand %q", args[0])
		},
	}
}
