package memstore_test

import (
	"testing"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
	"github.com/athena-edge/athena-edge/core/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) core.Backend {
		s := memstore.New()
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}
