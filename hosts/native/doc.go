// Package native is the process host of athena-edge: it turns flags and
// environment variables into an opened store, and owns the things a
// process has and core does not: the wall clock, the embedders and the
// wazero compilation cache.
//
// # Backend selection
//
// [Select] follows the seed's DatabaseFactory. ATHENA_DB_TYPE (sqlite or
// postgres) chooses explicitly. Otherwise Postgres is chosen implicitly
// when ATHENA_POSTGRES_URL or ATHENA_POSTGRES_HOST is set, and SQLite
// otherwise, at ATHENA_DB_PATH (default ~/.athena/memory.db). When an
// implicit Postgres cannot be reached, [Open] falls back to SQLite and
// says so on the given stderr; an explicit choice fails with a clear error.
//
// # Concurrency
//
// Selection is a value type. Functions in this package are safe for
// concurrent use; what they return documents its own rules.
package native
