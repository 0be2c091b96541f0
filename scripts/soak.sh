#!/usr/bin/env bash
# scripts/soak.sh — the full sync soak (docs/SYNC.md, "Soak").
#
#   ./scripts/soak.sh [go test flags...]
#
# 50 edges × 2,000 memories (plus state changes and access bumps) against a
# real PostgreSQL server, with 5% duplicated and 5% reordered push/pull
# frames, connections cut at random byte offsets, and 3 server restarts;
# then every edge syncs and the run checks 0 lost, 0 duplicated, every
# queue drained and every replica equal to the server. It prints
# `lost=N duplicated=M` and a `soak summary:` line, and exits non-zero on
# any loss, duplicate or divergence.
#
# Environment:
#   ATHENA_TEST_PG_URL     use this PostgreSQL (default: scripts/pg.sh starts one)
#   ATHENA_SOAK_EDGES      edges (50)
#   ATHENA_SOAK_PER_EDGE   memories per edge (2000)
#   ATHENA_SOAK_PROJECTS   projects the edges are spread over (5; every edge
#                          of a project ends up holding all of its memories)
#   ATHENA_SOAK_RESTARTS   server restarts (3)
#   ATHENA_SOAK_EDGE       memstore (default), sqlitevec or mixed
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -z ${ATHENA_TEST_PG_URL:-} ]]; then
	ATHENA_TEST_PG_URL=$(scripts/pg.sh | tail -n1)
	export ATHENA_TEST_PG_URL
fi
export ATHENA_SOAK=full
exec go test ./tests/ -run '^TestSyncSoak$' -count=1 -timeout 60m -v "$@"
