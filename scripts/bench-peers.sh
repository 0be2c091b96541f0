#!/usr/bin/env bash
# scripts/bench-peers.sh — athena-edge's stores against the peers a user would pick instead.
#
#   ./scripts/bench-peers.sh            N = 10000 and 100000
#   ./scripts/bench-peers.sh 10000      one size
#
# For each N: make sure the dataset exists (shared/bench/datagen, 200 queries, generated into
# /tmp/ds<N/1000>k when missing), build tests/bench (a separate Go module, so the peers' dependencies
# stay out of the main go.mod) and its sqlite-vec peer (a second module: it needs ncruces v0.21.3,
# ours is pinned to v0.32.0, so it runs as a child process), start PostgreSQL + pgvector with
# scripts/pg.sh, and run peerbench over every store in one run:
#
#   edge, central                 our stores through core.DB (the code behind `athena-edge bench`)
#   chromem-go v0.7.0             exact, in memory
#   sqlite-vec v0.1.6             vec0 + FTS5 on ncruces v0.21.3
#   pgvector-exact, pgvector-hnsw raw pgvector: no index; HNSW m 16, ef_construction 64, ef_search 40
#   seed-sql                      the seed's hybrid SQL: 0.7·cosine + 0.3·ts_rank, no vector index
#
# The markdown table goes to stdout (progress to stderr); the JSON to $BENCH_OUT/peers-<N>.json.
#
# Environment:
#   ATHENA_TEST_PG_URL   use this PostgreSQL instead of starting one with scripts/pg.sh
#   PEERBENCH_QUERIES    queries per store (default: all 200 up to 20K documents, 50 above; the
#                        exact peers take ~1 s per query at 100K). Always the same subset for every store.
#   PEERBENCH_STORES     comma-separated subset of the stores above (default all)
#   BENCH_OUT            directory for the JSON (default artifacts/bench)
#   ATHENA_SHARED_DIR    the shared/ directory (default ../shared next to the repository)
#   DATASET_DIR_<N>      use this dataset directory for size N instead of /tmp/ds<N/1000>k
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
SHARED=${ATHENA_SHARED_DIR:-$ROOT/../shared}
BIN=$ROOT/.bin/bench
OUT=${BENCH_OUT:-$ROOT/artifacts/bench}
SIZES=("$@")
((${#SIZES[@]})) || SIZES=(10000 100000)

log() { printf 'bench-peers: %s\n' "$*" >&2; }

for n in "${SIZES[@]}"; do
	[[ $n =~ ^[0-9]+$ ]] || {
		echo "usage: $0 [N ...]" >&2
		exit 2
	}
done

# --- build ----------------------------------------------------------------------
mkdir -p "$BIN" "$OUT"
log "building tests/bench (peerbench) and tests/bench/peers/sqlitevecpeer"
# -mod=mod: the bench module follows the main module by replace; let go add whatever it now needs.
(cd tests/bench && GOFLAGS=-mod=mod go build -o "$BIN/peerbench" ./cmd/peerbench)
(cd tests/bench/peers/sqlitevecpeer && GOFLAGS=-mod=mod go build -o "$BIN/sqlitevecpeer" .)

# --- PostgreSQL -----------------------------------------------------------------
if [[ -z ${ATHENA_TEST_PG_URL:-} ]]; then
	ATHENA_TEST_PG_URL=$(scripts/pg.sh | tail -n1)
	[[ $ATHENA_TEST_PG_URL == postgres://* ]] || {
		echo "scripts/pg.sh did not print a postgres:// URL" >&2
		exit 1
	}
fi
export ATHENA_TEST_PG_URL

# --- datasets and runs ------------------------------------------------------------
dataset_for() {
	local n=$1 var="DATASET_DIR_$1"
	if [[ -n ${!var:-} ]]; then
		printf '%s\n' "${!var}"
	elif ((n % 1000 == 0)); then
		printf '/tmp/ds%dk\n' $((n / 1000))
	else
		printf '/tmp/ds%d\n' "$n"
	fi
}

ensure_dataset() {
	local n=$1 dir=$2
	if [[ -f $dir/meta.json ]] && grep -q "\"n\":$n[,}]" "$dir/meta.json"; then
		return
	fi
	[[ -d $SHARED/bench/datagen ]] || {
		echo "datagen not found at $SHARED/bench/datagen (set ATHENA_SHARED_DIR)" >&2
		exit 1
	}
	log "generating $dir (n=$n, 200 queries) with $SHARED/bench/datagen"
	(cd "$SHARED/bench/datagen" && go run . -n "$n" -q 200 -out "$dir")
}

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git status --porcelain 2>/dev/null) ]]; then commit+=" + uncommitted changes"; fi

status=0
for n in "${SIZES[@]}"; do
	ds=$(dataset_for "$n")
	ensure_dataset "$n" "$ds"
	args=(-dataset "$ds" -pg "$ATHENA_TEST_PG_URL" -json "$OUT/peers-$n.json" -sqlitevec-peer "$BIN/sqlitevecpeer")
	[[ -n ${PEERBENCH_QUERIES:-} ]] && args+=(-queries "$PEERBENCH_QUERIES")
	[[ -n ${PEERBENCH_STORES:-} ]] && args+=(-stores "$PEERBENCH_STORES")
	log "N=$n: $BIN/peerbench ${args[*]}"
	printf '\n<!-- scripts/bench-peers.sh %s · athena-edge %s -->\n' "$n" "$commit"
	"$BIN/peerbench" "${args[@]}" || status=1
	log "N=$n: JSON in $OUT/peers-$n.json"
done
exit "$status"
