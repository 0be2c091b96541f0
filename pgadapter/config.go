package pgadapter

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/athena-edge/athena-edge/core"
)

// Defaults for [Config] fields left zero.
const (
	DefaultHost             = "localhost"
	DefaultPort             = 5432
	DefaultDBName           = "athena"
	DefaultUser             = "athena"
	DefaultMinConns         = 2  // the seed's ATHENA_POSTGRES_MIN_SIZE
	DefaultMaxConns         = 10 // the seed's ATHENA_POSTGRES_MAX_SIZE
	DefaultSchema           = "public"
	DefaultStatementTimeout = 30 * time.Second
	DefaultMaxRetries       = 10
	DefaultEfSearch         = 192
	DefaultExactBelow       = 2000
	DefaultIndexBatch       = 64
	DefaultIndexInterval    = time.Second
)

// Config configures a [Store]. The zero value connects to
// postgres://athena@localhost:5432/athena with the defaults above.
//
// A Config is a plain value; copy it freely.
type Config struct {
	// DSN is a PostgreSQL URL or keyword/value string. When set, Host, Port,
	// DBName, User and Password are ignored. pgx's connection settings
	// apply, except default_query_exec_mode exec and simple_protocol,
	// which New refuses (the store needs PostgreSQL's parameter types).
	DSN string
	// Host, Port, DBName, User and Password build the DSN when DSN is empty
	// (the seed's ATHENA_POSTGRES_* variables). Defaults: DefaultHost,
	// DefaultPort, DefaultDBName, DefaultUser, no password.
	Host     string
	Port     int
	DBName   string
	User     string
	Password string
	// MinConns and MaxConns size the pool (DefaultMinConns, DefaultMaxConns).
	MinConns int32
	MaxConns int32
	// Schema holds every table (DefaultSchema). It is created if missing.
	// The pgvector extension lives in public; the connection search_path is
	// "<Schema>, public".
	Schema string
	// StatementTimeout bounds every statement (DefaultStatementTimeout);
	// a statement that runs longer fails with SQLSTATE 57014. Negative
	// disables the timeout.
	StatementTimeout time.Duration
	// MaxRetries bounds how many times Update re-runs a transaction that
	// failed with a serialization failure, a deadlock or a lost connection
	// (DefaultMaxRetries). Negative disables retries.
	MaxRetries int
	// EfSearch is the minimum hnsw.ef_search of the approximate vector leg
	// (DefaultEfSearch); a leg asking for k candidates uses max(EfSearch,
	// 2k). At 100, recall@10 on the 100K x 768 benchmark set varied from
	// 0.965 to 0.996 between HNSW builds of the same data; 128 gave 0.9965
	// on a build where 100 gave 0.9715, for about 0.5 ms more per search.
	// 128 still fell below 0.98 on about one build in five (0.9765, 0.9795);
	// over five builds 192 gave 0.9905-0.997 where 128 gave 0.9795-0.995,
	// for about 0.2 ms more (docs/BENCHMARKS.md).
	EfSearch int
	// ExactBelow makes the vector leg exact (no index) for projects with
	// fewer memories than this (DefaultExactBelow). Negative always uses the
	// index unless the leg asks for Exact.
	ExactBelow int
	// IndexBatch is how many rows the background indexer moves into the
	// HNSW index per transaction (DefaultIndexBatch); see [Store.IndexPending].
	IndexBatch int
	// IndexInterval is how often the background indexer looks for rows
	// written by other processes (DefaultIndexInterval); this process's
	// writes wake it at once. Negative disables the background indexer:
	// rows then enter the index only through [Store.IndexPending], and the
	// vector leg scans the others exactly.
	IndexInterval time.Duration
	// SkipMigrations skips schema migrations in New (the schema must
	// already be current).
	SkipMigrations bool

	// indexerIdle, when set (by tests), is called each time the
	// background indexer finds nothing left to do.
	indexerIdle func()
}

// ConfigFromEnv reads the seed's variables through getenv (os.Getenv in
// a main package): ATHENA_POSTGRES_URL, or ATHENA_POSTGRES_HOST, _PORT,
// _DBNAME, _USER, _PASSWORD; plus ATHENA_POSTGRES_MIN_SIZE and _MAX_SIZE,
// and ATHENA_POSTGRES_SCHEMA (default public).
// Unset variables keep the defaults. A malformed number is an error
// wrapping core.ErrInvalid.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	var c Config
	c.DSN = getenv("ATHENA_POSTGRES_URL")
	c.Host = getenv("ATHENA_POSTGRES_HOST")
	c.DBName = getenv("ATHENA_POSTGRES_DBNAME")
	c.User = getenv("ATHENA_POSTGRES_USER")
	c.Password = getenv("ATHENA_POSTGRES_PASSWORD")
	c.Schema = getenv("ATHENA_POSTGRES_SCHEMA")
	for _, v := range []struct {
		name string
		set  func(int)
	}{
		{"ATHENA_POSTGRES_PORT", func(n int) { c.Port = n }},
		{"ATHENA_POSTGRES_MIN_SIZE", func(n int) { c.MinConns = int32(n) }},
		{"ATHENA_POSTGRES_MAX_SIZE", func(n int) { c.MaxConns = int32(n) }},
	} {
		s := getenv(v.name)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 65535 {
			return Config{}, fmt.Errorf("pgadapter: config: %w: %s=%q is not a valid number", core.ErrInvalid, v.name, s)
		}
		v.set(n)
	}
	return c, nil
}

// withDefaults fills zero fields and validates.
func (c Config) withDefaults() (Config, error) {
	if c.Host == "" {
		c.Host = DefaultHost
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.DBName == "" {
		c.DBName = DefaultDBName
	}
	if c.User == "" {
		c.User = DefaultUser
	}
	if c.MinConns == 0 {
		c.MinConns = DefaultMinConns
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.Schema == "" {
		c.Schema = DefaultSchema
	}
	if c.StatementTimeout == 0 {
		c.StatementTimeout = DefaultStatementTimeout
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.EfSearch <= 0 {
		c.EfSearch = DefaultEfSearch
	}
	if c.ExactBelow == 0 {
		c.ExactBelow = DefaultExactBelow
	}
	if c.IndexBatch <= 0 {
		c.IndexBatch = DefaultIndexBatch
	}
	if c.IndexInterval == 0 {
		c.IndexInterval = DefaultIndexInterval
	}
	switch {
	case c.MinConns < 0 || c.MaxConns < 1 || c.MinConns > c.MaxConns:
		return c, fmt.Errorf("pgadapter: config: %w: pool size min %d max %d", core.ErrInvalid, c.MinConns, c.MaxConns)
	case c.Port < 1 || c.Port > 65535:
		return c, fmt.Errorf("pgadapter: config: %w: port %d", core.ErrInvalid, c.Port)
	case len(c.Schema) > 63:
		return c, fmt.Errorf("pgadapter: config: %w: schema name longer than 63 bytes", core.ErrInvalid)
	}
	return c, nil
}

// dsn returns the connection string.
func (c Config) dsn() string {
	if c.DSN != "" {
		return c.DSN
	}
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(c.Host, strconv.Itoa(c.Port)), Path: "/" + c.DBName}
	if c.Password != "" {
		u.User = url.UserPassword(c.User, c.Password)
	} else {
		u.User = url.User(c.User)
	}
	return u.String()
}
