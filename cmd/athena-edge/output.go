package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/athena-edge/athena-edge/core"
)

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printMemory prints one memory for people.
func printMemory(w io.Writer, m core.Memory) {
	fmt.Fprintf(w, "%s  [%s · %s · %s]\n", m.ID, m.MemoryType, m.State, m.Domain)
	fmt.Fprintf(w, "  %s\n", indent(m.Content))
	if len(m.Tags) > 0 {
		fmt.Fprintf(w, "  tags: %s\n", strings.Join(m.Tags, ", "))
	}
	fmt.Fprintf(w, "  quality %.2f · accessed %d× · created %s\n", m.QualityScore, m.AccessCount, m.CreatedAt.Local().Format("2006-01-02 15:04"))
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n  ") }

// truncate shortens s to n runes for one-line listings.
func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
