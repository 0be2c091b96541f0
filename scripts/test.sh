#!/usr/bin/env bash
# scripts/test.sh — the athena-edge test command.
#
#   ./scripts/test.sh [go test flags...]     e.g. ./scripts/test.sh -run TestPostgres
#
# Steps: PostgreSQL+pgvector (scripts/pg.sh, unless ATHENA_TEST_PG_URL is set), gofmt,
# go vet (native, wasip1, js/wasm), chromium + playwright-core (scripts/browser.sh),
# go test -race ./... (with the browser end-to-end test), and ./core/... under
# wasip1 with the wazero runtime (installed pinned into .bin/).
#
# Environment:
#   ATHENA_TEST_PG_URL   use this PostgreSQL instead of starting one with scripts/pg.sh
#   ATHENA_TEST_SHORT=1  pass -short to go test
#
# Extra arguments are passed to both `go test` runs. All steps run even if one
# fails; the exit status is non-zero if any failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

WAZERO_VERSION=v1.12.0
BIN=$ROOT/.bin

TEST_ARGS=("$@")
if [[ ${ATHENA_TEST_SHORT:-} == 1 ]]; then
	TEST_ARGS=(-short "${TEST_ARGS[@]}")
fi

STEP_NAMES=()
STEP_RESULTS=()
FAILED=0

header() { printf '\n==> %s\n' "$*"; }

# step NAME CMD...: run CMD (a function or command), record result and duration.
step() {
	local name=$1
	shift
	header "$name"
	local start=$SECONDS rc=0
	"$@" || rc=$?
	local dur=$((SECONDS - start))
	STEP_NAMES+=("$name")
	if ((rc == 0)); then
		STEP_RESULTS+=("ok    ${dur}s")
	else
		STEP_RESULTS+=("FAIL  ${dur}s (exit $rc)")
		FAILED=1
		printf '==> FAILED: %s (exit %d)\n' "$name" "$rc"
	fi
}

summary() {
	printf '\n==> Summary\n'
	local i
	for i in "${!STEP_NAMES[@]}"; do
		printf '  %-40s %s\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]}"
	done
	if ((FAILED)); then
		printf '\nFAIL\n'
	else
		printf '\nPASS\n'
	fi
}

# --- 1. PostgreSQL ------------------------------------------------------------
header "PostgreSQL + pgvector"
if [[ -z ${ATHENA_TEST_PG_URL:-} ]]; then
	ATHENA_TEST_PG_URL=$(scripts/pg.sh | tail -n1)
	[[ $ATHENA_TEST_PG_URL == postgres://* ]] || {
		echo "scripts/pg.sh did not print a postgres:// URL" >&2
		exit 1
	}
fi
export ATHENA_TEST_PG_URL
echo "ATHENA_TEST_PG_URL=$ATHENA_TEST_PG_URL"

# --- 2. gofmt -----------------------------------------------------------------
go_files() {
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files -z --cached --others --exclude-standard -- '*.go'
	else
		find . -name '*.go' -not -path './.bin/*' -print0
	fi | while IFS= read -r -d '' f; do
		case "/$f" in
		*/testdata/*) continue ;;
		esac
		[[ -f $f ]] && printf '%s\0' "$f"
	done
}

check_gofmt() {
	local unformatted
	unformatted=$(go_files | xargs -0 -r gofmt -l)
	if [[ -n $unformatted ]]; then
		echo "gofmt: these files need formatting (run 'make fmt' or 'gofmt -w'):"
		printf '  %s\n' $unformatted
		return 1
	fi
	echo "all files gofmt-clean"
}
step "gofmt" check_gofmt

# --- 3. go vet ------------------------------------------------------------------
WASM_PKGS=(./core/...)
if [[ -d hosts/wasm ]]; then
	WASM_PKGS+=(./hosts/wasm/...)
fi

step "go vet ./..." go vet ./...
step "go vet (wasip1/wasm) ${WASM_PKGS[*]}" env GOOS=wasip1 GOARCH=wasm go vet "${WASM_PKGS[@]}"
step "go vet (js/wasm) ${WASM_PKGS[*]}" env GOOS=js GOARCH=wasm go vet "${WASM_PKGS[@]}"

# --- 4. go test -race -------------------------------------------------------------
# The browser end-to-end test (tests/browser_e2e_test.go) runs inside this
# step; scripts/browser.sh provisions it first (Debian's chromium, node's
# playwright-core pinned by web/package-lock.json), and ATHENA_TEST_BROWSER=1
# makes a missing browser fail the test instead of skipping it.
step "browser: chromium + playwright-core" scripts/browser.sh
export ATHENA_TEST_BROWSER=1
step "go test -race ./..." go test -race -count=1 "${TEST_ARGS[@]}" ./...

# The vector index's integer kernels have AVX2 assembly; the step above ran it
# (on a CPU with AVX2), this one runs the portable Go kernels they are tested
# against.
step "go test -tags purego ./sqlitevec (portable kernels)" go test -count=1 -tags purego -run 'Dot|Vector' "${TEST_ARGS[@]}" ./sqlitevec/

# --- 5. core under wasip1 (wazero) ----------------------------------------------
install_wazero() {
	if [[ -x $BIN/wazero ]] && [[ $("$BIN/wazero" version 2>/dev/null || true) == "$WAZERO_VERSION" ]]; then
		echo "wazero $WAZERO_VERSION already in $BIN"
		return 0
	fi
	echo "installing wazero $WAZERO_VERSION into $BIN"
	GOBIN=$BIN GOFLAGS= go install "github.com/tetratelabs/wazero/cmd/wazero@$WAZERO_VERSION"
}

test_wasip1() {
	install_wazero || return
	PATH="$(go env GOROOT)/lib/wasm:$BIN:$PATH" GOWASIRUNTIME=wazero GOOS=wasip1 GOARCH=wasm \
		go test -count=1 "${TEST_ARGS[@]}" ./core/...
}
step "go test (wasip1/wazero) ./core/..." test_wasip1

summary
exit "$FAILED"
