package sqlitevec_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/sqlitevec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOtherConnectionsWrites: two stores open on one file stand for two
// processes (a CLI beside a daemon, two MCP servers). Each one's searches
// must see what the other committed: inserts, content edits, state
// changes and deletes, through both the vector and the keyword legs.
func TestOtherConnectionsWrites(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "shared.db")
	open := func(device string) *core.DB {
		s, err := sqlitevec.Open(t.Context(), sqlitevec.Config{Path: path})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return core.New(s, core.Config{Device: device, Embedder: core.NewHashEmbedder(core.HashEmbedderConfig{Dim: 64})})
	}
	a, b := open("proc-a"), open("proc-b")
	ctx := t.Context()
	p, err := a.CreateProject(ctx, core.Project{Name: "shared", Path: "/shared"})
	require.NoError(t, err)

	search := func(db *core.DB, text string) []string {
		t.Helper()
		hits, err := db.Search(ctx, core.Query{ProjectID: p.ID, Text: text, K: 5})
		require.NoError(t, err)
		var out []string
		for _, h := range hits {
			if h.Keyword > 0 {
				out = append(out, h.Memory.Content)
			}
		}
		return out
	}
	assert.Empty(t, search(b, "axolotl"), "b opened before anything existed")

	m, err := a.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "the axolotl regrows its limbs"})
	require.NoError(t, err)
	for i := range 20 {
		_, err := a.Remember(ctx, core.Memory{ProjectID: p.ID, Content: fmt.Sprintf("filler note %d", i)})
		require.NoError(t, err)
	}
	assert.Equal(t, []string{"the axolotl regrows its limbs"}, search(b, "axolotl"), "b sees a's insert")

	_, err = b.UpdateMemory(ctx, m.ID, func(m *core.Memory) error { m.Content = "the pangolin rolls into a ball"; return nil })
	require.NoError(t, err)
	assert.Empty(t, search(a, "axolotl"), "a forgets the old text")
	assert.Equal(t, []string{"the pangolin rolls into a ball"}, search(a, "pangolin"), "a sees b's edit")

	_, err = b.SetState(ctx, m.ID, core.StateArchived, "")
	require.NoError(t, err)
	assert.Empty(t, search(a, "pangolin"), "archived is excluded by default, on a too")

	n, err := b.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "the quokka smiles"})
	require.NoError(t, err)
	assert.Equal(t, []string{"the quokka smiles"}, search(a, "quokka"))
	require.NoError(t, a.DeleteMemory(ctx, n.ID))
	assert.Empty(t, search(b, "quokka"), "b sees a's delete")

	// Both stay consistent with a fresh open of the file.
	c := open("proc-c")
	for _, q := range []string{"filler", "pangolin", "quokka", "axolotl"} {
		assert.Equal(t, search(c, q), search(a, q), q)
		assert.Equal(t, search(c, q), search(b, q), q)
	}
}
