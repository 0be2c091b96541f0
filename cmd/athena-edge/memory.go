package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/hosts/native"
)

// listFlag collects a repeatable, comma-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

func oneArg(name string, args []string, what string) (string, error) {
	if len(args) != 1 {
		return "", usageErr("%s takes exactly one %s", name, what)
	}
	return args[0], nil
}

func parseID(s string) (core.ID, error) {
	id, err := core.ParseID(s)
	if err != nil {
		return "", usageErr("%q is not a memory ID (a UUID)", s)
	}
	return id, nil
}

func rememberCommand() *command {
	var (
		typ, domain, session, eventType, embFile string
		tags                                     listFlag
		usefulness, confidence                   float64
	)
	return &command{
		name:    "remember",
		summary: "store a memory and print its ID (TEXT '-' reads standard input)",
		usage:   "TEXT [--type fact] [--domain memory] [--tags a,b] [--session S] [--event-type T] [--usefulness 0.5] [--confidence 1] [--embedding-file F]",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&typ, "type", string(core.TypeFact), "memory type: fact, pattern, decision, context, episodic, semantic, procedural, code_snippet, preference")
			fs.StringVar(&domain, "domain", "memory", "domain")
			fs.Var(&tags, "tags", "comma-separated tags (repeatable)")
			fs.StringVar(&session, "session", "", "session ID")
			fs.StringVar(&eventType, "event-type", "", "event type")
			fs.Float64Var(&usefulness, "usefulness", 0.5, "usefulness, 0..1")
			fs.Float64Var(&confidence, "confidence", 1.0, "confidence, 0..1")
			fs.StringVar(&embFile, "embedding-file", "", "a JSON array of floats to use as the embedding instead of the built-in embedder")
		},
		run: func(e *env, args []string) error {
			text, err := oneArg("remember", args, "TEXT argument (quote it, or '-' for standard input)")
			if err != nil {
				return err
			}
			if text == "-" {
				b, err := io.ReadAll(io.LimitReader(e.stdin, core.DefaultMaxContentBytes+1))
				if err != nil {
					return fmt.Errorf("read standard input: %w", err)
				}
				text = strings.TrimRight(string(b), "\n")
			}
			m := core.Memory{Content: text, MemoryType: core.MemoryType(typ), Domain: domain, Tags: tags, SessionID: session,
				EventType: eventType, Usefulness: usefulness, Confidence: confidence}
			if embFile != "" {
				if m.Embedding, err = readEmbedding(embFile); err != nil {
					return err
				}
			}
			s, err := e.openProject()
			if err != nil {
				return err
			}
			defer s.Close()
			m.ProjectID = s.project.ID
			if m.Embedding != nil {
				m.EmbeddingModel = s.project.EmbeddingModel
			}
			got, err := s.DB.Remember(e.ctx, m)
			if err != nil {
				return fmt.Errorf("remember: %w", err)
			}
			if e.json {
				return printJSON(e.stdout, map[string]core.ID{"id": got.ID})
			}
			_, err = fmt.Fprintln(e.stdout, got.ID)
			return err
		},
	}
}

func readEmbedding(path string) ([]float32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--embedding-file: %w", err)
	}
	var v []float64
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, usageErr("--embedding-file %s: not a JSON array of numbers: %v", path, err)
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out, nil
}

func recallCommand() *command {
	var (
		k                        int
		semW, kwW, threshold     float64
		fusion, since            string
		states, types, tagFilter listFlag
		semanticOnly, explain    bool
		noTouch, exact           bool
	)
	return &command{
		name:    "recall",
		summary: "hybrid (or --semantic-only) search; updates the access stats of what it returns unless --no-touch",
		usage:   "QUERY [-k 10] [--fusion weighted|rrf] [--semantic-weight 0.7] [--keyword-weight 0.3] [--state S] [--type T] [--tag T] [--since 24h|2026-01-02] [--threshold X] [--semantic-only] [--explain] [--no-touch]",
		flags: func(fs *flag.FlagSet) {
			fs.IntVar(&k, "k", core.DefaultK, "number of results")
			fs.Float64Var(&semW, "semantic-weight", core.DefaultSemanticWeight, "weight of cosine similarity in weighted fusion")
			fs.Float64Var(&kwW, "keyword-weight", core.DefaultKeywordWeight, "weight of BM25 in weighted fusion")
			fs.StringVar(&fusion, "fusion", core.FusionWeighted, "fusion: weighted or rrf")
			fs.Var(&states, "state", "consolidation states to include (default: every live state)")
			fs.Var(&types, "type", "memory types to include")
			fs.Var(&tagFilter, "tag", "tags every result must have")
			fs.StringVar(&since, "since", "", "only memories created since: a duration (24h) or a date (2006-01-02)")
			fs.Float64Var(&threshold, "threshold", 0, "minimum cosine similarity (semantic-only default 0.3)")
			fs.BoolVar(&semanticOnly, "semantic-only", false, "vector search only")
			fs.BoolVar(&explain, "explain", false, "explain each score")
			fs.BoolVar(&noTouch, "no-touch", false, "do not update access stats")
			fs.BoolVar(&exact, "exact", false, "force the exact vector leg")
		},
		run: func(e *env, args []string) error {
			if len(args) == 0 {
				return usageErr("recall takes a QUERY")
			}
			q := core.Query{Text: strings.Join(args, " "), K: k, Fusion: fusion, SemanticWeight: semW, KeywordWeight: kwW,
				Threshold: threshold, SemanticOnly: semanticOnly, Explain: explain, Exact: exact}
			for _, s := range states {
				q.States = append(q.States, core.State(s))
			}
			for _, t := range types {
				q.Filter.Types = append(q.Filter.Types, core.MemoryType(t))
			}
			q.Filter.Tags = tagFilter
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				q.Filter.CreatedAfter = t
			}
			s, err := e.openProject()
			if err != nil {
				return err
			}
			defer s.Close()
			q.ProjectID = s.project.ID
			hits, err := s.DB.Search(e.ctx, q)
			if err != nil {
				return fmt.Errorf("recall: %w", err)
			}
			if !noTouch && len(hits) > 0 {
				ids := make([]core.ID, len(hits))
				for i, h := range hits {
					ids[i] = h.Memory.ID
				}
				touched, err := s.DB.RecordAccess(e.ctx, ids...)
				if err != nil {
					return fmt.Errorf("recall: record access: %w", err)
				}
				for i := range hits {
					hits[i].Memory = touched[i]
				}
			}
			if e.json {
				out := make([]native.HitJSON, len(hits))
				for i, h := range hits {
					out[i] = native.NewHitJSON(h, s.project.Name)
				}
				return printJSON(e.stdout, out)
			}
			if len(hits) == 0 {
				_, err := fmt.Fprintln(e.stdout, "no memories found")
				return err
			}
			for i, h := range hits {
				fmt.Fprintf(e.stdout, "%2d. %.3f  %s\n    %s\n", i+1, h.Hybrid, h.Memory.ID, truncate(h.Memory.Content, 100))
				if h.Explain != nil {
					x := h.Explain
					fmt.Fprintf(e.stdout, "    semantic %.3f → %.3f · keyword %.3f (norm %.3f) → %.3f · ranks vector %d keyword %d · terms %s · %s\n",
						x.SemanticRaw, x.SemanticContribution, x.KeywordRaw, x.KeywordNormalized, x.KeywordContribution,
						x.VectorRank, x.KeywordRank, strings.Join(x.MatchedTerms, ","), exactness(x.Exact))
				}
			}
			return nil
		},
	}
}

func exactness(exact bool) string {
	if exact {
		return "exact"
	}
	return "approximate"
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usageErr("--since %q: want a duration (24h) or a date (2006-01-02)", s)
}

// memoryIDCommand is a command that takes one memory ID, does act to the
// memory and prints the memory act returns.
func memoryIDCommand(name, summary string, act func(ctx context.Context, db *core.DB, id core.ID) (core.Memory, error)) *command {
	return &command{
		name: name, summary: summary, usage: "ID",
		run: func(e *env, args []string) error {
			arg, err := oneArg(name, args, "ID")
			if err != nil {
				return err
			}
			id, err := parseID(arg)
			if err != nil {
				return err
			}
			h, err := e.open()
			if err != nil {
				return err
			}
			defer h.Close()
			m, err := act(e.ctx, h.DB, id)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			return printOneMemory(e, h.DB, m)
		},
	}
}

// printOneMemory prints m as JSON (with its project's name) or for people.
func printOneMemory(e *env, db *core.DB, m core.Memory) error {
	if e.json {
		p, _ := db.Project(e.ctx, m.ProjectID)
		return printJSON(e.stdout, native.NewMemoryJSON(m, p.Name))
	}
	printMemory(e.stdout, m)
	return nil
}

func getCommand() *command {
	return memoryIDCommand("get", "print one memory", func(ctx context.Context, db *core.DB, id core.ID) (core.Memory, error) {
		return db.Memory(ctx, id)
	})
}

func forgetCommand() *command {
	return &command{
		name: "forget", summary: "delete a memory (leaves a tombstone that syncs)", usage: "ID",
		run: func(e *env, args []string) error {
			arg, err := oneArg("forget", args, "ID")
			if err != nil {
				return err
			}
			id, err := parseID(arg)
			if err != nil {
				return err
			}
			h, err := e.open()
			if err != nil {
				return err
			}
			defer h.Close()
			if err := h.DB.DeleteMemory(e.ctx, id); err != nil {
				return fmt.Errorf("forget: %w", err)
			}
			if e.json {
				return printJSON(e.stdout, map[string]any{"id": id, "deleted": true})
			}
			_, err = fmt.Fprintf(e.stdout, "forgot %s\n", id)
			return err
		},
	}
}

func touchCommand() *command {
	return memoryIDCommand("touch", "record an access (access_count+1, last_accessed = now)",
		func(ctx context.Context, db *core.DB, id core.ID) (core.Memory, error) {
			ms, err := db.RecordAccess(ctx, id)
			if err != nil {
				return core.Memory{}, err
			}
			return ms[0], nil
		})
}

func stateCommand() *command {
	var by string
	return &command{
		name: "state", summary: "change a memory's consolidation state (the state machine is enforced)",
		usage: "ID STATE [--superseded-by ID]",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&by, "superseded-by", "", "the surviving memory, when STATE is superseded")
		},
		run: func(e *env, args []string) error {
			if len(args) != 2 {
				return usageErr("state takes ID and STATE")
			}
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			to, err := core.ParseState(args[1])
			if err != nil {
				return usageErr("%v", err)
			}
			h, err := e.open()
			if err != nil {
				return err
			}
			defer h.Close()
			m, err := h.DB.SetState(e.ctx, id, to, core.ID(by))
			if err != nil {
				return fmt.Errorf("state: %w", err)
			}
			if e.json {
				return printOneMemory(e, h.DB, m)
			}
			_, err = fmt.Fprintf(e.stdout, "%s is now %s\n", m.ID, m.State)
			return err
		},
	}
}

func labileCommand() *command {
	var window time.Duration
	return &command{
		name: "labile", summary: "list labile memories retrieved inside their reconsolidation window",
		usage: "[--window 60m]",
		flags: func(fs *flag.FlagSet) {
			fs.DurationVar(&window, "window", core.DefaultWindow, "reconsolidation window")
		},
		run: func(e *env, args []string) error {
			if len(args) > 0 {
				return usageErr("labile takes no arguments")
			}
			if window <= 0 {
				return usageErr("--window must be positive")
			}
			s, err := e.openProject()
			if err != nil {
				return err
			}
			defer s.Close()
			ms, err := s.DB.ReconsolidationWindow(e.ctx, s.project.ID, window)
			if err != nil {
				return fmt.Errorf("labile: %w", err)
			}
			if e.json {
				out := make([]native.MemoryJSON, len(ms))
				for i, m := range ms {
					out[i] = native.NewMemoryJSON(m, s.project.Name)
				}
				return printJSON(e.stdout, out)
			}
			if len(ms) == 0 {
				_, err := fmt.Fprintln(e.stdout, "no labile memories in the window")
				return err
			}
			for _, m := range ms {
				fmt.Fprintf(e.stdout, "%s  retrieved %s  %s\n", m.ID, m.LastRetrieved.Local().Format("15:04:05"), truncate(m.Content, 80))
			}
			return nil
		},
	}
}
