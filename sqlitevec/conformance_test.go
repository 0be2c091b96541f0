package sqlitevec

import (
	"testing"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		file bool
	}{{"memory", false}, {"file", true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, func(t *testing.T) core.Backend { return openTest(t, tt.file) })
		})
	}
}
