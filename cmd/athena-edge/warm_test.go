package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/hosts/native"
)

// TestWarmCacheCommand checks the hidden command a quick command starts on
// a cold compilation cache: it is not in the help, and needs a directory.
func TestWarmCacheCommand(t *testing.T) {
	t.Parallel()
	out, _, err := cli(t, nil, "help")
	require.NoError(t, err)
	assert.NotContains(t, out, warmCacheCommand)

	_, _, err = cli(t, nil, warmCacheCommand, "")
	require.ErrorIs(t, err, native.ErrConfig)
}

func TestQuickCommand(t *testing.T) {
	t.Parallel()
	names := map[string]bool{}
	for _, c := range commands() {
		names[c.name] = true
	}
	tests := []struct {
		name  string
		quick bool
	}{
		{"remember", true},
		{"recall", true},
		{"get", true},
		{"project", true},
		{"import", false},
		{"export", false},
		{"consolidate", false},
		{"reembed", false},
		{"sync", false},
		{"serve", false},
		{"mcp", false},
		{"doctor", false},
	}
	for _, tc := range tests {
		require.True(t, names[tc.name], "%s is a command", tc.name)
		assert.Equal(t, tc.quick, quickCommand(tc.name), tc.name)
	}
}
