package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/hosts/native"
)

// reembedJSON is the --json report of reembed.
type reembedJSON struct {
	Project   string `json:"project"`
	FromModel string `json:"from_model"`
	FromDim   int    `json:"from_dim"`
	ToModel   string `json:"to_model"`
	ToDim     int    `json:"to_dim"`
	Memories  int    `json:"memories"`
	Resumed   bool   `json:"resumed"`
	StagedMS  int64  `json:"staged_ms"`
	SwapMS    int64  `json:"swap_ms"`
	Unchanged bool   `json:"unchanged,omitempty"`
}

// reembedHookKey carries a test hook in the context: it runs after every
// staged batch (and once before the first), like the progress bar.
type reembedHookKey struct{}

func reembedCommand() *command {
	var (
		model      string
		dim, batch int
	)
	return &command{
		name: "reembed",
		summary: "move the project to another embedder: stage new vectors in batches (resumable; search keeps working), " +
			"then swap every vector in one transaction",
		usage: "--model M [--dim D] [--batch 128]",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&model, "model", "", core.HashEmbedderModel+" (built in) or the HTTP embedder named by ATHENA_EMBED_MODEL")
			fs.IntVar(&dim, "dim", 0, fmt.Sprintf("dimension of %s (default %d); for the HTTP embedder, must equal ATHENA_EMBED_DIM", core.HashEmbedderModel, core.DefaultEmbedDim))
			fs.IntVar(&batch, "batch", core.DefaultReembedBatch, "memories embedded per staging transaction")
		},
		run: func(e *env, args []string) error {
			if len(args) > 0 {
				return usageErr("reembed takes no arguments")
			}
			if batch < 1 {
				return usageErr("--batch must be at least 1, got %d", batch)
			}
			if dim < 0 || dim > core.DefaultMaxDim {
				return usageErr("--dim must be between 1 and %d, got %d", core.DefaultMaxDim, dim)
			}
			target, err := reembedTarget(e, model, dim)
			if err != nil {
				return err
			}
			s, err := e.openProject()
			if err != nil {
				return err
			}
			defer s.Close()
			bar := newProgress(e.stderr, "reembed "+s.project.Name, 0)
			hook, _ := e.ctx.Value(reembedHookKey{}).(func(done, total int))
			last := 0
			rep, err := core.Reembed(e.ctx, s.DB, s.project.ID, target, core.ReembedOptions{Batch: batch, Progress: func(done, total int) {
				last = done
				bar.total = int64(total)
				bar.set(int64(done))
				if hook != nil {
					hook(done, total)
				}
			}})
			bar.done(int64(last))
			if err != nil {
				return fmt.Errorf("reembed %s to %s/%d: %w", s.project.Name, target.Model(), target.Dim(), err)
			}
			if emb := s.DB.Embedder(); emb != nil && (emb.Model() != rep.ToModel || emb.Dim() != rep.ToDim) {
				fmt.Fprintf(e.stderr, "note: this environment embeds with %s/%d; remember and recall in %s now need %s/%d (%s)\n",
					emb.Model(), emb.Dim(), s.project.Name, rep.ToModel, rep.ToDim, envHint(rep.ToModel, rep.ToDim))
			}
			if e.json {
				return printJSON(e.stdout, reembedJSON{Project: s.project.Name, FromModel: rep.FromModel, FromDim: rep.FromDim,
					ToModel: rep.ToModel, ToDim: rep.ToDim, Memories: rep.Memories, Resumed: rep.Resumed,
					StagedMS: rep.Staging.Milliseconds(), SwapMS: rep.Swap.Milliseconds(), Unchanged: rep.Unchanged})
			}
			if rep.Unchanged {
				fmt.Fprintf(e.stdout, "%s already uses %s/%d: nothing to do\n", s.project.Name, rep.ToModel, rep.ToDim)
				return nil
			}
			resumed := ""
			if rep.Resumed {
				resumed = ", resumed"
			}
			fmt.Fprintf(e.stdout, "re-embedded %s: %d memories from %s/%d to %s/%d (staged in %s%s, swapped in %s)\n",
				s.project.Name, rep.Memories, rep.FromModel, rep.FromDim, rep.ToModel, rep.ToDim,
				rep.Staging.Round(time.Millisecond), resumed, rep.Swap.Round(time.Millisecond))
			return nil
		},
	}
}

// reembedTarget is the embedder --model (and --dim) name: the built-in
// one, or the HTTP embedder the environment configures.
func reembedTarget(e *env, model string, dim int) (core.Embedder, error) {
	switch envModel := e.getenv("ATHENA_EMBED_MODEL"); {
	case model == core.HashEmbedderModel:
		return core.NewHashEmbedder(core.HashEmbedderConfig{Dim: dim}), nil
	case model != "" && model == envModel && e.getenv("ATHENA_EMBED_URL") != "":
		emb, err := native.EmbedderFromEnv(e.getenv)
		if err != nil {
			return nil, usageErr("%v", err)
		}
		if dim != 0 && dim != emb.Dim() {
			return nil, usageErr("--dim %d: the HTTP embedder %s has ATHENA_EMBED_DIM=%d", dim, model, emb.Dim())
		}
		return emb, nil
	default:
		configured := "none configured"
		if envModel != "" {
			configured = fmt.Sprintf("ATHENA_EMBED_MODEL=%q", envModel)
			if e.getenv("ATHENA_EMBED_URL") == "" {
				configured += " but ATHENA_EMBED_URL is not set"
			}
		}
		if model == "" {
			return nil, usageErr("reembed needs --model: %s (built in; --dim picks its dimension, default %d), or the HTTP embedder "+
				"that ATHENA_EMBED_URL, ATHENA_EMBED_MODEL and ATHENA_EMBED_DIM configure (%s)", core.HashEmbedderModel, core.DefaultEmbedDim, configured)
		}
		return nil, usageErr("--model %q: use %s (built in; --dim picks its dimension, default %d) or the HTTP embedder "+
			"that ATHENA_EMBED_URL, ATHENA_EMBED_MODEL and ATHENA_EMBED_DIM configure (%s)", model, core.HashEmbedderModel, core.DefaultEmbedDim, configured)
	}
}

// envHint says how to configure the environment for an embedder.
func envHint(model string, dim int) string {
	if model == core.HashEmbedderModel {
		return fmt.Sprintf("set ATHENA_EMBED_DIM=%d and unset ATHENA_EMBED_URL", dim)
	}
	return fmt.Sprintf("set ATHENA_EMBED_URL, ATHENA_EMBED_MODEL=%s and ATHENA_EMBED_DIM=%d", model, dim)
}
