package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/athena-edge/athena-edge/core"
)

func consolidateCommand() *command {
	var dryRun, all bool
	return &command{
		name:    "consolidate",
		summary: "sleep-like consolidation: merge duplicates, turn episodes into knowledge, promote, rescore, archive; --dry-run changes nothing",
		usage:   "[--dry-run] [--all]",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&dryRun, "dry-run", false, "report what would change, change nothing")
			fs.BoolVar(&all, "all", false, "consolidate every project, not just the current one")
		},
		run: func(e *env, args []string) error {
			if len(args) > 0 {
				return usageErr("consolidate takes no arguments")
			}
			s, err := e.openProject()
			if err != nil {
				return err
			}
			defer s.Close()
			projects := []core.Project{s.project}
			if all {
				if projects, err = s.DB.Projects(e.ctx); err != nil {
					return err
				}
			}
			reports := make([]core.ConsolidationReport, 0, len(projects))
			for _, p := range projects {
				r, err := core.Consolidate(e.ctx, s.DB, p.ID, core.ConsolidationOptions{DryRun: dryRun})
				if err != nil {
					return fmt.Errorf("consolidate %s: %w", p.Name, err)
				}
				reports = append(reports, r)
				if !e.json {
					printConsolidation(e.stdout, p.Name, &r)
				}
			}
			if e.json {
				if all {
					return printJSON(e.stdout, reports)
				}
				return printJSON(e.stdout, reports[0])
			}
			return nil
		},
	}
}

func printConsolidation(w io.Writer, project string, r *core.ConsolidationReport) {
	verb := "consolidated"
	if r.DryRun {
		verb = "would consolidate"
	}
	fmt.Fprintf(w, "%s %s: %d memories and %d events scanned, %d writes\n", verb, project, r.MemoriesScanned, r.EventsScanned, r.Writes)
	for _, m := range r.Merged {
		ids := make([]string, len(m.Superseded))
		for i, s := range m.Superseded {
			ids[i] = string(s.ID)
		}
		fmt.Fprintf(w, "  merged     %s ← %v\n", m.Survivor, ids)
	}
	for _, c := range r.Clustered {
		fmt.Fprintf(w, "  clustered  %s ← %d events of session %s\n", c.MemoryID, len(c.EventIDs), orNone(c.SessionID))
	}
	for _, x := range []struct {
		label string
		ids   []core.ID
	}{{"promoted", r.Promoted}, {"archived", r.Archived}, {"returned", r.ReturnedFromLabile}} {
		for _, id := range x.ids {
			fmt.Fprintf(w, "  %-10s %s\n", x.label, id)
		}
	}
	for _, rs := range r.Rescored {
		fmt.Fprintf(w, "  rescored   %s usefulness %.3f → %.3f\n", rs.ID, rs.From, rs.To)
	}
	for _, sk := range r.Skipped {
		fmt.Fprintf(w, "  skipped    %s (%s): %s\n", sk.ID, sk.Rule, sk.Reason)
	}
}
