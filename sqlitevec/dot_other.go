//go:build !amd64 || purego

package sqlitevec

// dotI8I8 is Σ a[i]·b[i] in integers.
func dotI8I8(a, b []int8) int32 { return dotI8I8Go(a, b) }

// dotI8I8x2 is (Σ a[i]·b[i], Σ a[i]·c[i]).
func dotI8I8x2(a, b, c []int8) (int32, int32) { return dotI8I8x2Go(a, b, c) }

// dotI8Lanes adds q[i]·x[i] to s[i mod dotLanes] (see dotI8).
func dotI8Lanes(q []float32, x []int8, s *[dotLanes]float32) { dotI8LanesGo(q, x, s) }
