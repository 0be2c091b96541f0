//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package native

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDetachedAttr(t *testing.T) {
	t.Parallel()
	require.True(t, detachedAttr().Setsid, "the warmer outlives the terminal's signals to the command")
}
