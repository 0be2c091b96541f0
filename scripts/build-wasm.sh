#!/usr/bin/env bash
# scripts/build-wasm.sh — build athena-edge's WebAssembly artifacts.
#
#   scripts/build-wasm.sh            build into .build/wasm/
#   OUT=dir scripts/build-wasm.sh    build into dir
#
# Artifacts:
#   core.wasm   hosts/wasm as a WASI preview 1 reactor (GOOS=wasip1, -buildmode=c-shared),
#               loaded by hosts/native.LoadCoreModule. ABI: see `go doc ./hosts/wasm`.
#
# The flags are fixed so that the same source and Go version give the same bytes:
# -trimpath (no local paths), -buildvcs=false (no VCS stamp), -ldflags='-s -w' (no symbol
# table or DWARF; the wasm "name" section goes too, so traps show no Go function names).
# Prints each artifact's size, raw and gzip -9, and its SHA-256.
#
# The output directory gets a .gitignore of "*", so it never shows up in git status.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-.build/wasm}
mkdir -p "$OUT"
[[ -f $OUT/.gitignore ]] || printf '*\n' >"$OUT/.gitignore"

FLAGS=(-trimpath -buildvcs=false -ldflags='-s -w')

build() { # build NAME GOOS GOARCH PKG [extra flags...]
	local name=$1 goos=$2 goarch=$3 pkg=$4
	shift 4
	echo "building $OUT/$name ($goos/$goarch $pkg)" >&2
	GOOS=$goos GOARCH=$goarch go build "${FLAGS[@]}" "$@" -o "$OUT/$name" "$pkg"
}

report() { # report FILE...
	local f raw gz sum
	printf '%-28s %12s %12s  %s\n' artifact bytes gzip-9 sha256
	for f in "$@"; do
		raw=$(wc -c <"$f")
		gz=$(gzip -9 -c "$f" | wc -c)
		sum=$(sha256sum "$f" | cut -d' ' -f1)
		printf '%-28s %12d %12d  %s\n' "$f" "$raw" "$gz" "$sum"
	done
}

build core.wasm wasip1 wasm ./hosts/wasm -buildmode=c-shared
# The GOOS=js browser build (issue 9, second part) goes here.

report "$OUT/core.wasm"
