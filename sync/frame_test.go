//go:build !js

package edgesync_test

import (
	"math"
	"testing"

	edgesync "github.com/athena-edge/athena-edge/sync"
	"github.com/stretchr/testify/require"
)

func TestFrameRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		f    edgesync.Frame
	}{
		{"empty meta", edgesync.Frame{Type: edgesync.MsgPoke, Meta: []byte{}}},
		{"meta only", edgesync.Frame{Type: edgesync.MsgHello, Meta: []byte(`{"versions":[1]}`)}},
		{"vectors", edgesync.Frame{Type: edgesync.MsgPush, Meta: []byte(`{}`), Vectors: [][]float32{
			{1, -0.5, float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32, math.MaxFloat32}, nil, {3}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := edgesync.AppendFrame(nil, &tc.f)
			require.Len(t, b, edgesync.EncodedSize(&tc.f))
			got, err := edgesync.DecodeFrame(b, edgesync.FrameLimits{})
			require.NoError(t, err)
			require.Equal(t, tc.f.Type, got.Type)
			require.Equal(t, string(tc.f.Meta), string(got.Meta))
			require.Equal(t, len(tc.f.Vectors), len(got.Vectors))
			for i := range tc.f.Vectors {
				require.Equal(t, bits(tc.f.Vectors[i]), bits(got.Vectors[i]), "vector %d bit-exact", i)
			}
		})
	}
}

func TestDecodeFrameLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"no magic", []byte{0x00, 1, 0, 0}},
		{"type zero", []byte{0xAE, 0, 0, 0}},
		{"meta longer than input", []byte{0xAE, 1, 10, '{', '}'}},
		{"huge meta length", []byte{0xAE, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"huge vector count", []byte{0xAE, 3, 0, 0xff, 0xff, 0xff, 0x7f}},
		{"dim beyond input", []byte{0xAE, 3, 0, 1, 100, 0, 0, 0, 0}},
		{"dim over limit", []byte{0xAE, 3, 0, 1, 0xff, 0xff, 0x03}},
		{"trailing bytes", []byte{0xAE, 7, 0, 0, 1}},
		{"bad varint", []byte{0xAE, 1, 0x80}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := edgesync.DecodeFrame(tc.in, edgesync.FrameLimits{MaxMeta: 1 << 20, MaxVectors: 1000, MaxDim: 4096})
			require.ErrorIs(t, err, edgesync.ErrProtocol)
		})
	}
}

func bits(v []float32) []uint32 {
	if len(v) == 0 {
		return nil
	}
	out := make([]uint32, len(v))
	for i, x := range v {
		out[i] = math.Float32bits(x)
	}
	return out
}

// FuzzDecodeFrame: decoding arbitrary bytes never panics, and any frame
// that decodes re-encodes to the same bytes (bit-exact floats, NaNs too).
func FuzzDecodeFrame(f *testing.F) {
	f.Add(edgesync.AppendFrame(nil, &edgesync.Frame{Type: edgesync.MsgHello, Meta: []byte(`{"versions":[1]}`)}))
	f.Add(edgesync.AppendFrame(nil, &edgesync.Frame{Type: edgesync.MsgPush, Meta: []byte(`{"batch":1,"changes":[{}]}`),
		Vectors: [][]float32{{1, 2, float32(math.NaN())}}}))
	f.Add([]byte{0xAE, 3, 0, 2, 0, 1, 0, 0, 0x80, 0x7f})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := edgesync.DecodeFrame(b, edgesync.FrameLimits{MaxMeta: 1 << 16, MaxVectors: 64, MaxDim: 256})
		if err != nil {
			return
		}
		again := edgesync.AppendFrame(nil, &fr)
		fr2, err := edgesync.DecodeFrame(again, edgesync.FrameLimits{MaxMeta: 1 << 16, MaxVectors: 64, MaxDim: 256})
		if err != nil {
			t.Fatalf("re-encoded frame does not decode: %v", err)
		}
		if string(fr2.Meta) != string(fr.Meta) || fr2.Type != fr.Type || len(fr2.Vectors) != len(fr.Vectors) {
			t.Fatalf("round trip changed the frame")
		}
		for i := range fr.Vectors {
			a, b := bits(fr.Vectors[i]), bits(fr2.Vectors[i])
			if len(a) != len(b) {
				t.Fatalf("vector %d length changed", i)
			}
			for j := range a {
				if a[j] != b[j] {
					t.Fatalf("vector %d float %d changed", i, j)
				}
			}
		}
	})
}
