#!/usr/bin/env bash
# scripts/build-web.sh — build the browser demo's core: athena.wasm
# (GOOS=js GOARCH=wasm ./hosts/wasm/js) and the Go toolchain's wasm_exec.js.
#
#   scripts/build-web.sh             build into web/dist/
#   OUT=dir scripts/build-web.sh     build into dir
#
# `athena-edge serve` builds the same artifacts itself at start (into the user
# cache directory) when it runs inside the source tree; this script is for
# serving them from elsewhere: `athena-edge serve --web-dist web/dist`.
# No network: the build uses the module cache like any go build.
#
# Same flags as web.BuildArgs and scripts/build-wasm.sh (-trimpath,
# -buildvcs=false, -ldflags='-s -w'): the same source and Go version give the
# same bytes. Prints each artifact's size, raw and gzip -9, and its SHA-256.
# The output directory gets a .gitignore of "*".
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-web/dist}
mkdir -p "$OUT"
[[ -f $OUT/.gitignore ]] || printf '*\n' >"$OUT/.gitignore"

echo "building $OUT/athena.wasm (js/wasm ./hosts/wasm/js)" >&2
GOOS=js GOARCH=wasm GOFLAGS= go build -trimpath -buildvcs=false -ldflags='-s -w' -o "$OUT/athena.wasm" ./hosts/wasm/js

GOROOT_DIR=$(go env GOROOT)
for f in "$GOROOT_DIR/lib/wasm/wasm_exec.js" "$GOROOT_DIR/misc/wasm/wasm_exec.js"; do
	if [[ -f $f ]]; then
		cp "$f" "$OUT/wasm_exec.js"
		break
	fi
done
[[ -f $OUT/wasm_exec.js ]] || { echo "build-web.sh: no wasm_exec.js under $GOROOT_DIR" >&2; exit 1; }

printf '%-28s %12s %12s  %s\n' artifact bytes gzip-9 sha256
for f in "$OUT/athena.wasm" "$OUT/wasm_exec.js"; do
	printf '%-28s %12d %12d  %s\n' "$f" "$(wc -c <"$f")" "$(gzip -9 -c "$f" | wc -c)" "$(sha256sum "$f" | cut -d' ' -f1)"
done
