package pgadapter

import (
	"testing"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/storetest"
)

// TestConformance runs core's store suite against PostgreSQL, each case
// on a fresh schema.
func TestConformance(t *testing.T) {
	t.Parallel()
	testURL(t)
	storetest.Run(t, func(t *testing.T) core.Backend { return openTest(t) })
}
