//go:build amd64 && !purego

#include "textflag.h"

// The kernels sign-extend 16 int8 at a time to 16 int16 lanes
// (VPMOVSXBW), multiply lane by lane and add adjacent pairs into 8 int32
// lanes (VPMADDWD: at most 2·128² = 2¹⁵, never saturating) and add those
// into int32 accumulators, then finish the last len mod 16 elements one
// at a time. Every sum wraps modulo 2³², as the Go versions' do, so the
// result is the same whatever the order of the additions.

// func dotI8I8AVX2(a, b []int8) int32
TEXT ·dotI8I8AVX2(SB), NOSPLIT, $0-52
	MOVQ a_base+0(FP), SI
	MOVQ a_len+8(FP), CX
	MOVQ b_base+24(FP), DI
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	CMPQ CX, $64
	JB   loop16

	// 64 elements a step, into four independent accumulators.
loop64:
	VPMOVSXBW (SI), Y4
	VPMOVSXBW (DI), Y5
	VPMADDWD  Y4, Y5, Y5
	VPADDD    Y5, Y0, Y0
	VPMOVSXBW 16(SI), Y6
	VPMOVSXBW 16(DI), Y7
	VPMADDWD  Y6, Y7, Y7
	VPADDD    Y7, Y1, Y1
	VPMOVSXBW 32(SI), Y4
	VPMOVSXBW 32(DI), Y5
	VPMADDWD  Y4, Y5, Y5
	VPADDD    Y5, Y2, Y2
	VPMOVSXBW 48(SI), Y6
	VPMOVSXBW 48(DI), Y7
	VPMADDWD  Y6, Y7, Y7
	VPADDD    Y7, Y3, Y3
	ADDQ      $64, SI
	ADDQ      $64, DI
	SUBQ      $64, CX
	CMPQ      CX, $64
	JAE       loop64

loop16:
	CMPQ      CX, $16
	JB        reduce
	VPMOVSXBW (SI), Y4
	VPMOVSXBW (DI), Y5
	VPMADDWD  Y4, Y5, Y5
	VPADDD    Y5, Y0, Y0
	ADDQ      $16, SI
	ADDQ      $16, DI
	SUBQ      $16, CX
	JMP       loop16

reduce:
	VPADDD       Y1, Y0, Y0
	VPADDD       Y3, Y2, Y2
	VPADDD       Y2, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDD       X1, X0, X0
	VPSHUFD      $0x4e, X0, X1
	VPADDD       X1, X0, X0
	VPSHUFD      $0xb1, X0, X1
	VPADDD       X1, X0, X0
	VMOVD        X0, AX
	VZEROUPPER
	TESTQ        CX, CX
	JZ           done

tail:
	MOVBLSX (SI), DX
	MOVBLSX (DI), BX
	IMULL   BX, DX
	ADDL    DX, AX
	INCQ    SI
	INCQ    DI
	DECQ    CX
	JNZ     tail

done:
	MOVL AX, ret+48(FP)
	RET

// func dotI8I8x2AVX2(a, b, c []int8) (x, y int32)
TEXT ·dotI8I8x2AVX2(SB), NOSPLIT, $0-80
	MOVQ  a_base+0(FP), SI
	MOVQ  a_len+8(FP), CX
	MOVQ  b_base+24(FP), DI
	MOVQ  c_base+48(FP), R8
	VPXOR Y6, Y6, Y6
	VPXOR Y7, Y7, Y7
	VPXOR Y8, Y8, Y8
	VPXOR Y9, Y9, Y9
	CMPQ  CX, $32
	JB    x2step16

	// 32 elements a step: a is loaded once for b and c, two independent
	// accumulators each (Y6, Y7 for b; Y8, Y9 for c).
x2loop32:
	VPMOVSXBW (SI), Y0
	VPMOVSXBW 16(SI), Y1
	VPMOVSXBW (DI), Y2
	VPMOVSXBW 16(DI), Y3
	VPMOVSXBW (R8), Y4
	VPMOVSXBW 16(R8), Y5
	VPMADDWD  Y0, Y2, Y2
	VPMADDWD  Y1, Y3, Y3
	VPMADDWD  Y0, Y4, Y4
	VPMADDWD  Y1, Y5, Y5
	VPADDD    Y2, Y6, Y6
	VPADDD    Y3, Y7, Y7
	VPADDD    Y4, Y8, Y8
	VPADDD    Y5, Y9, Y9
	ADDQ      $32, SI
	ADDQ      $32, DI
	ADDQ      $32, R8
	SUBQ      $32, CX
	CMPQ      CX, $32
	JAE       x2loop32

x2step16:
	CMPQ      CX, $16
	JB        x2reduce
	VPMOVSXBW (SI), Y0
	VPMOVSXBW (DI), Y2
	VPMOVSXBW (R8), Y4
	VPMADDWD  Y0, Y2, Y2
	VPMADDWD  Y0, Y4, Y4
	VPADDD    Y2, Y6, Y6
	VPADDD    Y4, Y8, Y8
	ADDQ      $16, SI
	ADDQ      $16, DI
	ADDQ      $16, R8
	SUBQ      $16, CX

x2reduce:
	VPADDD       Y7, Y6, Y6
	VPADDD       Y9, Y8, Y8
	VEXTRACTI128 $1, Y6, X0
	VEXTRACTI128 $1, Y8, X1
	VPADDD       X0, X6, X6
	VPADDD       X1, X8, X8
	VPSHUFD      $0x4e, X6, X0
	VPSHUFD      $0x4e, X8, X1
	VPADDD       X0, X6, X6
	VPADDD       X1, X8, X8
	VPSHUFD      $0xb1, X6, X0
	VPSHUFD      $0xb1, X8, X1
	VPADDD       X0, X6, X6
	VPADDD       X1, X8, X8
	VMOVD        X6, AX
	VMOVD        X8, BX
	VZEROUPPER
	TESTQ        CX, CX
	JZ           x2done

x2tail:
	MOVBLSX (SI), DX
	MOVBLSX (DI), R9
	MOVBLSX (R8), R10
	IMULL   DX, R9
	IMULL   DX, R10
	ADDL    R9, AX
	ADDL    R10, BX
	INCQ    SI
	INCQ    DI
	INCQ    R8
	DECQ    CX
	JNZ     x2tail

x2done:
	MOVL AX, x+72(FP)
	MOVL BX, y+76(FP)
	RET

// func dotI8LanesAVX2(q []float32, x []int8, s *[16]float32)
//
// Lanes 0-7 of s are Y0, lanes 8-15 Y1: 16 elements a step, each int8
// sign-extended to int32 (VPMOVSXBD) and converted to float32 exactly,
// multiplied by q (VMULPS rounds the product) and added to its lane
// (VADDPS), as dotI8LanesGo does element by element.
TEXT ·dotI8LanesAVX2(SB), NOSPLIT, $0-56
	MOVQ    q_base+0(FP), SI
	MOVQ    q_len+8(FP), CX
	MOVQ    x_base+24(FP), DI
	MOVQ    s+48(FP), DX
	VMOVUPS (DX), Y0
	VMOVUPS 32(DX), Y1
	SHRQ    $4, CX
	JZ      lanesdone

lanesloop:
	VPMOVSXBD (DI), Y2
	VPMOVSXBD 8(DI), Y3
	VCVTDQ2PS Y2, Y2
	VCVTDQ2PS Y3, Y3
	VMULPS    (SI), Y2, Y2
	VMULPS    32(SI), Y3, Y3
	VADDPS    Y2, Y0, Y0
	VADDPS    Y3, Y1, Y1
	ADDQ      $64, SI
	ADDQ      $16, DI
	DECQ      CX
	JNZ       lanesloop

lanesdone:
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	VZEROUPPER
	RET
