package native

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Backend kinds.
const (
	KindSQLite   = "sqlite"
	KindPostgres = "postgres"
)

// Backends lists the backends this build can open, as the seed's
// DatabaseFactory.get_available_backends did.
func Backends() []string { return []string{KindSQLite, KindPostgres} }

// ErrConfig reports an invalid configuration.
var ErrConfig = errors.New("invalid configuration")

// Selection is the backend the environment and flags chose.
type Selection struct {
	Kind     string // KindSQLite or KindPostgres
	Explicit bool   // chosen by ATHENA_DB_TYPE or a flag, so no fallback
	Reason   string // why this backend was chosen, for doctor

	// SQLite.
	Path string

	// Postgres: either URL, or the seed's discrete settings.
	URL      string
	Host     string
	Port     int
	DBName   string
	User     string
	Password string
	MinConns int // default 2
	MaxConns int // default 10
}

// Seed defaults.
const (
	DefaultMinConns = 2
	DefaultMaxConns = 10
	DefaultPort     = 5432
	DefaultDBName   = "athena"
	DefaultUser     = "athena"
)

// Select reads the seed's environment variables through getenv. home is
// the user's home directory (for the default SQLite path). dbFlag, if not
// empty, is the --db flag: a SQLite path, or a postgres:// URL, and is an
// explicit choice.
func Select(getenv func(string) string, home, dbFlag string) (Selection, error) {
	s := Selection{MinConns: DefaultMinConns, MaxConns: DefaultMaxConns, Port: DefaultPort, DBName: DefaultDBName, User: DefaultUser}
	s.URL = getenv("ATHENA_POSTGRES_URL")
	s.Host = getenv("ATHENA_POSTGRES_HOST")
	for _, v := range []struct {
		name string
		dst  *string
	}{{"ATHENA_POSTGRES_DBNAME", &s.DBName}, {"ATHENA_POSTGRES_USER", &s.User}, {"ATHENA_POSTGRES_PASSWORD", &s.Password}} {
		if x := getenv(v.name); x != "" {
			*v.dst = x
		}
	}
	for _, v := range []struct {
		name string
		dst  *int
	}{{"ATHENA_POSTGRES_PORT", &s.Port}, {"ATHENA_POSTGRES_MIN_SIZE", &s.MinConns}, {"ATHENA_POSTGRES_MAX_SIZE", &s.MaxConns}} {
		x := getenv(v.name)
		if x == "" {
			continue
		}
		n, err := strconv.Atoi(x)
		if err != nil || n < 0 {
			return Selection{}, fmt.Errorf("%w: %s=%q is not a non-negative integer", ErrConfig, v.name, x)
		}
		*v.dst = n
	}
	if s.MinConns > s.MaxConns || s.MaxConns < 1 {
		return Selection{}, fmt.Errorf("%w: ATHENA_POSTGRES_MIN_SIZE=%d must not exceed ATHENA_POSTGRES_MAX_SIZE=%d (≥ 1)", ErrConfig, s.MinConns, s.MaxConns)
	}
	s.Path = getenv("ATHENA_DB_PATH")
	if s.Path == "" {
		s.Path = filepath.Join(home, ".athena", "memory.db")
	}
	switch {
	case strings.HasPrefix(dbFlag, "postgres://") || strings.HasPrefix(dbFlag, "postgresql://"):
		s.Kind, s.Explicit, s.URL, s.Reason = KindPostgres, true, dbFlag, "--db is a postgres URL"
		return s, nil
	case dbFlag != "":
		s.Kind, s.Explicit, s.Path, s.Reason = KindSQLite, true, dbFlag, "--db is a file path"
		return s, nil
	}
	switch t := strings.ToLower(getenv("ATHENA_DB_TYPE")); t {
	case "sqlite":
		s.Kind, s.Explicit, s.Reason = KindSQLite, true, "ATHENA_DB_TYPE=sqlite"
	case "postgres", "postgresql":
		s.Kind, s.Explicit, s.Reason = KindPostgres, true, "ATHENA_DB_TYPE="+t
	case "":
		if s.URL != "" || s.Host != "" {
			s.Kind, s.Reason = KindPostgres, "ATHENA_POSTGRES_URL or ATHENA_POSTGRES_HOST is set"
		} else {
			s.Kind, s.Reason = KindSQLite, "the default"
		}
	default:
		return Selection{}, fmt.Errorf("%w: ATHENA_DB_TYPE=%q (want sqlite or postgres)", ErrConfig, t)
	}
	if s.Kind == KindPostgres && s.URL == "" && s.Host == "" {
		s.Host = "localhost"
	}
	return s, nil
}

// Where describes the selected store for people, without secrets.
func (s Selection) Where() string {
	if s.Kind == KindSQLite {
		return s.Path
	}
	if s.URL != "" {
		return RedactURL(s.URL)
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", s.User, s.Host, s.Port, s.DBName)
}

// RedactURL hides the password in a connection URL.
func RedactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	userinfo, host, ok := strings.Cut(rest, "@")
	if !ok {
		return u
	}
	if user, _, hasPass := strings.Cut(userinfo, ":"); hasPass {
		return scheme + "://" + user + ":xxxxx@" + host
	}
	return u
}
