//go:build amd64 && !purego

#include "textflag.h"

// The distances are exact counts, so the order of the additions does not
// matter: every kernel here gives the same bits as the Go code.

// prefixDistsAVX512 takes eight 256-bit prefixes (four ZMM registers, two
// prefixes each) a step: XOR with the query (broadcast to both halves of
// Z8), count the bits of each 64-bit word (VPOPCNTQ), then add each
// prefix's four counts together with two rounds of interleaving
// (VPUNPCK*QDQ, then VSHUFI64X2 on 128-bit lanes) that leave the eight
// distances in the order 0 2 1 3 4 6 5 7; VPERMQ puts them back in order
// and VPMOVQW stores them as eight uint16.

// func prefixDistsAVX512(q *[4]uint64, codes []uint64, out []uint16)
TEXT ·prefixDistsAVX512(SB), NOSPLIT, $0-56
	MOVQ q+0(FP), AX
	MOVQ codes_base+8(FP), SI
	MOVQ out_base+32(FP), DI
	MOVQ out_len+40(FP), CX
	SHRQ $3, CX
	JZ   done
	VBROADCASTI64X4 (AX), Z8

loop:
	VPXORQ      (SI), Z8, Z0
	VPXORQ      64(SI), Z8, Z1
	VPXORQ      128(SI), Z8, Z2
	VPXORQ      192(SI), Z8, Z3
	VPOPCNTQ    Z0, Z0
	VPOPCNTQ    Z1, Z1
	VPOPCNTQ    Z2, Z2
	VPOPCNTQ    Z3, Z3
	VPUNPCKLQDQ Z1, Z0, Z4
	VPUNPCKHQDQ Z1, Z0, Z5
	VPADDQ      Z5, Z4, Z4
	VPUNPCKLQDQ Z3, Z2, Z6
	VPUNPCKHQDQ Z3, Z2, Z7
	VPADDQ      Z7, Z6, Z6
	VSHUFI64X2  $0x88, Z6, Z4, Z0
	VSHUFI64X2  $0xdd, Z6, Z4, Z1
	VPADDQ      Z1, Z0, Z0
	VPERMQ      $0xd8, Z0, Z0
	VPMOVQW     Z0, (DI)
	ADDQ        $256, SI
	ADDQ        $16, DI
	DECQ        CX
	JNZ         loop
	VZEROUPPER

done:
	RET

// restDistsAVX512 takes eight slots a step: each slot's eight words after
// the prefix in one ZMM register (an unaligned load at codes + 8·(w·slot +
// prefixWords)), XOR and VPOPCNTQ as above, then three rounds of
// interleaving (VPUNPCK*QDQ, VSHUFI64X2 twice) that add each register's
// eight counts and leave the eight distances in order. The loads depend on
// nothing but cand, so the core overlaps the cache misses of many slots.

// func restDistsAVX512(q *[8]uint64, codes []uint64, w int, cand []int32, out []uint16)
TEXT ·restDistsAVX512(SB), NOSPLIT, $0-88
	MOVQ q+0(FP), AX
	MOVQ codes_base+8(FP), BX
	ADDQ $32, BX              // prefixWords·8 bytes
	MOVQ w+32(FP), R8
	SHLQ $3, R8               // bytes a slot
	MOVQ cand_base+40(FP), DX
	MOVQ out_base+64(FP), DI
	MOVQ out_len+72(FP), CX
	SHRQ $3, CX
	JZ   rdone
	VMOVDQU64 (AX), Z8

rloop:
	MOVLQSX     0(DX), R9
	IMULQ       R8, R9
	VPXORQ      (BX)(R9*1), Z8, Z0
	MOVLQSX     4(DX), R9
	IMULQ       R8, R9
	VPXORQ      (BX)(R9*1), Z8, Z1
	MOVLQSX     8(DX), R9
	IMULQ       R8, R9
	VPXORQ      (BX)(R9*1), Z8, Z2
	MOVLQSX     12(DX), R9
	IMULQ       R8, R9
	VPXORQ      (BX)(R9*1), Z8, Z3
	MOVLQSX     16(DX), R9
	IMULQ       R8, R9
	VPXORQ      (BX)(R9*1), Z8, Z4
	MOVLQSX     20(DX), R9
	IMULQ       R8, R9
	VPXORQ      (BX)(R9*1), Z8, Z5
	MOVLQSX     24(DX), R9
	IMULQ       R8, R9
	VPXORQ      (BX)(R9*1), Z8, Z6
	MOVLQSX     28(DX), R9
	IMULQ       R8, R9
	VPXORQ      (BX)(R9*1), Z8, Z7
	VPOPCNTQ    Z0, Z0
	VPOPCNTQ    Z1, Z1
	VPOPCNTQ    Z2, Z2
	VPOPCNTQ    Z3, Z3
	VPOPCNTQ    Z4, Z4
	VPOPCNTQ    Z5, Z5
	VPOPCNTQ    Z6, Z6
	VPOPCNTQ    Z7, Z7
	VPUNPCKLQDQ Z1, Z0, Z9
	VPUNPCKHQDQ Z1, Z0, Z10
	VPADDQ      Z10, Z9, Z0
	VPUNPCKLQDQ Z3, Z2, Z9
	VPUNPCKHQDQ Z3, Z2, Z10
	VPADDQ      Z10, Z9, Z2
	VPUNPCKLQDQ Z5, Z4, Z9
	VPUNPCKHQDQ Z5, Z4, Z10
	VPADDQ      Z10, Z9, Z4
	VPUNPCKLQDQ Z7, Z6, Z9
	VPUNPCKHQDQ Z7, Z6, Z10
	VPADDQ      Z10, Z9, Z6
	VSHUFI64X2  $0x88, Z2, Z0, Z9
	VSHUFI64X2  $0xdd, Z2, Z0, Z10
	VPADDQ      Z10, Z9, Z0
	VSHUFI64X2  $0x88, Z6, Z4, Z9
	VSHUFI64X2  $0xdd, Z6, Z4, Z10
	VPADDQ      Z10, Z9, Z4
	VSHUFI64X2  $0x88, Z4, Z0, Z9
	VSHUFI64X2  $0xdd, Z4, Z0, Z10
	VPADDQ      Z10, Z9, Z0
	VPMOVQW     Z0, (DI)
	ADDQ        $32, DX
	ADDQ        $16, DI
	DECQ        CX
	JNZ         rloop
	VZEROUPPER

rdone:
	RET

// prefixDistsPOPCNT and restDistsPOPCNT are the same in scalar code, one
// row a step: XOR, POPCNT (into its own source register, which avoids the
// false dependency on the destination of older cores), add.

// func prefixDistsPOPCNT(q *[4]uint64, codes []uint64, out []uint16)
TEXT ·prefixDistsPOPCNT(SB), NOSPLIT, $0-56
	MOVQ  q+0(FP), AX
	MOVQ  codes_base+8(FP), SI
	MOVQ  out_base+32(FP), DI
	MOVQ  out_len+40(FP), CX
	TESTQ CX, CX
	JZ    sdone
	MOVQ  0(AX), R8
	MOVQ  8(AX), R9
	MOVQ  16(AX), R10
	MOVQ  24(AX), R11

sloop:
	MOVQ    0(SI), AX
	XORQ    R8, AX
	POPCNTQ AX, AX
	MOVQ    8(SI), BX
	XORQ    R9, BX
	POPCNTQ BX, BX
	MOVQ    16(SI), DX
	XORQ    R10, DX
	POPCNTQ DX, DX
	MOVQ    24(SI), R12
	XORQ    R11, R12
	POPCNTQ R12, R12
	ADDQ    BX, AX
	ADDQ    R12, DX
	ADDQ    DX, AX
	MOVW    AX, (DI)
	ADDQ    $32, SI
	ADDQ    $2, DI
	DECQ    CX
	JNZ     sloop

sdone:
	RET

// func restDistsPOPCNT(q *[8]uint64, codes []uint64, w int, cand []int32, out []uint16)
TEXT ·restDistsPOPCNT(SB), NOSPLIT, $0-88
	MOVQ q+0(FP), AX
	MOVQ codes_base+8(FP), BX
	ADDQ $32, BX
	MOVQ w+32(FP), R8
	SHLQ $3, R8
	MOVQ cand_base+40(FP), DX
	MOVQ out_base+64(FP), DI
	MOVQ out_len+72(FP), CX
	TESTQ CX, CX
	JZ   tdone

tloop:
	MOVLQSX 0(DX), SI
	IMULQ   R8, SI
	ADDQ    BX, SI
	MOVQ    0(SI), R9
	XORQ    0(AX), R9
	POPCNTQ R9, R9
	MOVQ    8(SI), R10
	XORQ    8(AX), R10
	POPCNTQ R10, R10
	MOVQ    16(SI), R11
	XORQ    16(AX), R11
	POPCNTQ R11, R11
	MOVQ    24(SI), R12
	XORQ    24(AX), R12
	POPCNTQ R12, R12
	ADDQ    R10, R9
	ADDQ    R12, R11
	MOVQ    32(SI), R10
	XORQ    32(AX), R10
	POPCNTQ R10, R10
	MOVQ    40(SI), R12
	XORQ    40(AX), R12
	POPCNTQ R12, R12
	ADDQ    R11, R9
	ADDQ    R12, R10
	MOVQ    48(SI), R11
	XORQ    48(AX), R11
	POPCNTQ R11, R11
	MOVQ    56(SI), R12
	XORQ    56(AX), R12
	POPCNTQ R12, R12
	ADDQ    R10, R9
	ADDQ    R12, R11
	ADDQ    R11, R9
	MOVW    R9, (DI)
	ADDQ    $4, DX
	ADDQ    $2, DI
	DECQ    CX
	JNZ     tloop

tdone:
	RET
