#!/usr/bin/env bash
# scripts/pg.sh — throwaway PostgreSQL 15 + pgvector cluster for tests and benchmarks.
#
#   scripts/pg.sh        ensure pgvector is installed, ensure a cluster is running,
#                        print its URL as the LAST line of stdout
#   scripts/pg.sh stop   stop the cluster and remove its directory
#   scripts/pg.sh status print the URL if running, exit 1 otherwise
#
# Everything except the URL goes to stderr, so `URL=$(scripts/pg.sh | tail -n1)` works.
#
# Environment:
#   ATHENA_PG_DIR        state directory (default /tmp/athena-pg, or /tmp/athena-pg-$USER
#                        when not root). Holds data/, the socket, postgres.log and url.
#   ATHENA_PG_PORT       first port to probe (default 55432)
#   ATHENA_PG_BIN        PostgreSQL bin dir (default /usr/lib/postgresql/15/bin)
#
# On Debian bookworm, pgvector is not packaged, so it is built from Debian's own trixie
# source package (deb-src only — no trixie binary packages are ever installed).
set -euo pipefail

PG_MAJOR=15
PG_BIN=${ATHENA_PG_BIN:-/usr/lib/postgresql/$PG_MAJOR/bin}
PG_CONFIG=$PG_BIN/pg_config
VECTOR_CONTROL=/usr/share/postgresql/$PG_MAJOR/extension/vector.control
VECTOR_SO=/usr/lib/postgresql/$PG_MAJOR/lib/vector.so
TRIXIE_SRC_LIST=/etc/apt/sources.list.d/athena-trixie-src.list

if [[ $EUID -eq 0 ]]; then
	STATE_DIR=${ATHENA_PG_DIR:-/tmp/athena-pg}
	PG_OS_USER=postgres
else
	STATE_DIR=${ATHENA_PG_DIR:-/tmp/athena-pg-$(id -un)}
	PG_OS_USER=$(id -un)
fi
DATA_DIR=$STATE_DIR/data
URL_FILE=$STATE_DIR/url
LOG_FILE=$STATE_DIR/postgres.log
FIRST_PORT=${ATHENA_PG_PORT:-55432}
DB_USER=athena
DB_NAME=athena

log() { printf 'pg.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# as_pg runs a command as the OS user that owns the cluster (PostgreSQL refuses root).
as_pg() {
	if [[ $EUID -eq 0 ]]; then
		runuser -u "$PG_OS_USER" -- "$@"
	else
		"$@"
	fi
}

# as_root runs a command with root privileges (sudo when needed and available).
as_root() {
	if [[ $EUID -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root to run: $*"
	fi
}

# ---------------------------------------------------------------------------
# pgvector
# ---------------------------------------------------------------------------

pgvector_installed() { [[ -f $VECTOR_CONTROL && -f $VECTOR_SO ]]; }

# debian_mirror prints the Debian archive URL already configured on this machine
# (so we reuse the same host/proxy), defaulting to deb.debian.org.
debian_mirror() {
	local uri
	uri=$(
		{
			# deb822 .sources files: "URIs: http://host/debian"
			grep -hsE '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources | sed -E 's/^[[:space:]]*URIs:[[:space:]]*//' | tr ' ' '\n'
			# one-line format: "deb [opts] http://host/debian bookworm main"
			grep -hsE '^[[:space:]]*deb(-src)?[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
				sed -E 's/\[[^]]*\]//' | awk '{print $2}'
		} | grep -E '^https?://[^[:space:]]+/debian/?$' | head -n1
	) || true
	printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

install_pgvector() {
	log "pgvector not installed for PostgreSQL $PG_MAJOR; building it from Debian trixie source package"
	command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install pgvector for PostgreSQL $PG_MAJOR manually"

	local need_update=0
	if [[ ! -f $TRIXIE_SRC_LIST ]]; then
		local mirror
		mirror=$(debian_mirror)
		mirror=${mirror%/}
		log "adding deb-src (source only) for trixie: $TRIXIE_SRC_LIST ($mirror)"
		printf '# Added by athena-edge scripts/pg.sh: source packages only (pgvector build).\ndeb-src %s trixie main\n' \
			"$mirror" | as_root tee "$TRIXIE_SRC_LIST" >/dev/null
		need_update=1
	fi
	if ! apt-cache showsrc pgvector 2>/dev/null | grep -q '^Package: pgvector'; then
		need_update=1
	fi
	local pkgs=(postgresql-server-dev-$PG_MAJOR dpkg-dev build-essential)
	local missing=()
	local p
	for p in "${pkgs[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if ((${#missing[@]})) && ! apt-cache policy "${missing[@]}" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
		need_update=1
	fi

	export DEBIAN_FRONTEND=noninteractive
	if ((need_update)); then
		log "apt-get update"
		as_root apt-get update -qq >&2
	fi
	if ((${#missing[@]})); then
		log "installing build dependencies: ${missing[*]}"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
	fi

	local build
	build=$(mktemp -d /tmp/athena-pgvector-build.XXXXXX)
	# let apt's sandbox user write the download (avoids an "unsandboxed" warning)
	if [[ $EUID -eq 0 ]] && id -u _apt >/dev/null 2>&1; then chown _apt "$build"; fi
	# shellcheck disable=SC2064
	trap "rm -rf '$build'" EXIT
	log "apt-get source pgvector/trixie (in $build)"
	(cd "$build" && apt-get source -qq pgvector/trixie >&2)
	local src
	src=$(find "$build" -mindepth 1 -maxdepth 1 -type d -name 'pgvector-*' | head -n1)
	[[ -n $src ]] || die "pgvector source not found after apt-get source"
	log "building $(basename "$src") against $("$PG_CONFIG" --version)"
	# OPTFLAGS= : no -march=native, like Debian's own package (portable; pgvector
	# dispatches SIMD at runtime). with_llvm=no: skip JIT bitcode (not needed).
	local mkargs=(PG_CONFIG="$PG_CONFIG" OPTFLAGS= with_llvm=no)
	make -s -C "$src" -j"$(nproc)" "${mkargs[@]}" >&2
	as_root make -s -C "$src" "${mkargs[@]}" install >&2
	rm -rf "$build"
	trap - EXIT
	pgvector_installed || die "pgvector build finished but $VECTOR_CONTROL / $VECTOR_SO missing"
	log "pgvector installed"
}

# ---------------------------------------------------------------------------
# cluster
# ---------------------------------------------------------------------------

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

url_for_port() { printf 'postgres://%s@127.0.0.1:%s/%s?sslmode=disable\n' "$DB_USER" "$1" "$DB_NAME"; }

port_from_url() { sed -E 's#^.*@127\.0\.0\.1:([0-9]+)/.*$#\1#' "$URL_FILE"; }

# cluster_running: the recorded cluster is up and accepting connections.
cluster_running() {
	[[ -f $URL_FILE && -f $DATA_DIR/postmaster.pid ]] || return 1
	local port
	port=$(port_from_url) || return 1
	[[ $port =~ ^[0-9]+$ ]] || return 1
	as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR" status >/dev/null 2>&1 || return 1
	"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U "$DB_USER" -d "$DB_NAME" -t 2 >/dev/null 2>&1
}

stop_cluster() {
	if [[ -f $DATA_DIR/postmaster.pid ]]; then
		log "stopping cluster in $DATA_DIR"
		as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR" -m fast -w -t 30 stop >&2 ||
			as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR" -m immediate -w -t 10 stop >&2 || true
	fi
}

init_cluster() {
	log "initdb in $DATA_DIR"
	rm -rf "$DATA_DIR"
	mkdir -p "$STATE_DIR"
	if [[ $EUID -eq 0 ]]; then
		id -u "$PG_OS_USER" >/dev/null 2>&1 ||
			useradd --system --home-dir /var/lib/postgresql --shell /bin/bash "$PG_OS_USER"
		chown "$PG_OS_USER": "$STATE_DIR"
	fi
	chmod 0755 "$STATE_DIR"
	as_pg "$PG_BIN/initdb" -D "$DATA_DIR" -U postgres -E UTF8 --no-locale --auth=trust --no-instructions >/dev/null

	# Parallel index builds (pgvector HNSW) put maintenance_work_mem into dynamic
	# shared memory; containers often have a tiny /dev/shm, so fall back to mmap files.
	local dsm=posix shm_kb
	shm_kb=$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2 {print $4}') || true
	if [[ ! ${shm_kb:-} =~ ^[0-9]+$ ]] || ((shm_kb < 1572864)); then
		dsm=mmap
	fi

	as_pg tee -a "$DATA_DIR/postgresql.conf" >/dev/null <<EOF

# --- athena-edge scripts/pg.sh (tests and benchmarks) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$STATE_DIR'
max_connections = 200
# The HNSW index and the rows of 100K 768-d memories fit in shared buffers.
shared_buffers = 1GB
maintenance_work_mem = 1GB
max_parallel_maintenance_workers = 2
dynamic_shared_memory_type = $dsm
fsync = on
# Fewer checkpoints, so fewer full-page images: every HNSW insert dirties
# several neighbour pages, and the first change to a page after a
# checkpoint logs the whole page (measured: ~15-20 KB of WAL per insert).
max_wal_size = 8GB
checkpoint_timeout = 30min
wal_compression = lz4
EOF
	as_pg tee "$DATA_DIR/pg_hba.conf" >/dev/null <<EOF
# athena-edge throwaway test cluster: trust, loopback only.
local all all              trust
host  all all 127.0.0.1/32 trust
host  all all ::1/128      trust
EOF
}

# start_cluster PORT: start on PORT; returns non-zero if it fails.
start_cluster() {
	local port=$1
	log "starting PostgreSQL $PG_MAJOR on 127.0.0.1:$port (log: $LOG_FILE)"
	as_pg touch "$LOG_FILE"
	# 9>&- : don't let the postmaster inherit (and hold forever) our lock fd.
	as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR" -l "$LOG_FILE" -o "-p $port" -w -t 60 start >/dev/null 2>&1 9>&-
}

psql_super() {
	local port=$1
	shift
	as_pg env PGOPTIONS='-c client_min_messages=warning' "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$STATE_DIR" -p "$port" -U postgres "$@"
}

setup_roles() {
	local port=$1
	psql_super "$port" -d postgres >&2 <<EOF
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
    CREATE ROLE $DB_USER SUPERUSER LOGIN;
  END IF;
END \$\$;
SELECT 'CREATE DATABASE $DB_NAME OWNER $DB_USER'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB_NAME')\gexec
EOF
	psql_super "$port" -d "$DB_NAME" -c 'CREATE EXTENSION IF NOT EXISTS vector' >&2
}

ensure_cluster() {
	if cluster_running; then
		cat "$URL_FILE"
		return
	fi

	# Stale or absent: stop whatever is left and start afresh (reusing the data
	# directory only if a previous setup completed).
	stop_cluster
	rm -f "$URL_FILE"
	if [[ ! -f $STATE_DIR/.setup-complete || ! -f $DATA_DIR/PG_VERSION ]]; then
		rm -f "$STATE_DIR/.setup-complete"
		init_cluster
	else
		log "restarting existing cluster in $DATA_DIR"
	fi

	local port=$FIRST_PORT tries=0
	while :; do
		if ((tries++ >= 100)); then
			die "no free port found in $FIRST_PORT..$((FIRST_PORT + 100)); see $LOG_FILE"
		fi
		if port_in_use "$port"; then
			port=$((port + 1))
			continue
		fi
		if start_cluster "$port"; then
			break
		fi
		log "start on port $port failed; last log lines:"
		tail -n 5 "$LOG_FILE" >&2 || true
		stop_cluster
		port=$((port + 1))
	done

	setup_roles "$port"
	touch "$STATE_DIR/.setup-complete"
	url_for_port "$port" >"$URL_FILE"
	log "ready"
	cat "$URL_FILE"
}

with_lock() {
	mkdir -p "$(dirname "$STATE_DIR")"
	exec 9>"$STATE_DIR.lock"
	flock -w 600 9 || die "timed out waiting for $STATE_DIR.lock"
}

cmd=${1:-start}
case $cmd in
start | up | "")
	[[ -x $PG_BIN/postgres ]] || die "PostgreSQL $PG_MAJOR not found in $PG_BIN (apt-get install postgresql-$PG_MAJOR)"
	with_lock
	pgvector_installed || install_pgvector
	ensure_cluster
	;;
stop | down)
	with_lock
	stop_cluster
	rm -rf "$STATE_DIR"
	log "stopped; removed $STATE_DIR"
	;;
status)
	if cluster_running; then cat "$URL_FILE"; else
		log "not running"
		exit 1
	fi
	;;
*)
	echo "usage: $0 [start|stop|status]" >&2
	exit 2
	;;
esac
