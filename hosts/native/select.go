package native

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/athena-edge/athena-edge/pgadapter"
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

	Path     string           // SQLite file (ATHENA_DB_PATH, default ~/.athena/memory.db)
	Postgres pgadapter.Config // from ATHENA_POSTGRES_URL or the seed's ATHENA_POSTGRES_* variables
}

// Select reads the seed's environment variables through getenv. home is
// the user's home directory (for the default SQLite path). dbFlag, if not
// empty, is the --db flag: a SQLite path, or a postgres:// URL, and is an
// explicit choice.
func Select(getenv func(string) string, home, dbFlag string) (Selection, error) {
	pg, err := pgadapter.ConfigFromEnv(getenv)
	if err != nil {
		return Selection{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	minC, maxC := pg.MinConns, pg.MaxConns
	if minC == 0 {
		minC = pgadapter.DefaultMinConns
	}
	if maxC == 0 {
		maxC = pgadapter.DefaultMaxConns
	}
	if minC > maxC {
		return Selection{}, fmt.Errorf("%w: ATHENA_POSTGRES_MIN_SIZE=%d exceeds ATHENA_POSTGRES_MAX_SIZE=%d", ErrConfig, minC, maxC)
	}
	s := Selection{Postgres: pg, Path: getenv("ATHENA_DB_PATH")}
	if s.Path == "" {
		s.Path = filepath.Join(home, ".athena", "memory.db")
	}
	switch {
	case strings.HasPrefix(dbFlag, "postgres://") || strings.HasPrefix(dbFlag, "postgresql://"):
		s.Kind, s.Explicit, s.Postgres.DSN, s.Reason = KindPostgres, true, dbFlag, "--db is a postgres URL"
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
		if pg.DSN != "" || pg.Host != "" {
			s.Kind, s.Reason = KindPostgres, "ATHENA_POSTGRES_URL or ATHENA_POSTGRES_HOST is set"
		} else {
			s.Kind, s.Reason = KindSQLite, "the default"
		}
	default:
		return Selection{}, fmt.Errorf("%w: ATHENA_DB_TYPE=%q (want sqlite or postgres)", ErrConfig, t)
	}
	return s, nil
}

// Where describes the selected store for people, without secrets.
func (s Selection) Where() string {
	if s.Kind == KindSQLite {
		return s.Path
	}
	if s.Postgres.DSN != "" {
		return RedactURL(s.Postgres.DSN)
	}
	host, port, db, user := s.Postgres.Host, s.Postgres.Port, s.Postgres.DBName, s.Postgres.User
	if host == "" {
		host = pgadapter.DefaultHost
	}
	if port == 0 {
		port = pgadapter.DefaultPort
	}
	if db == "" {
		db = pgadapter.DefaultDBName
	}
	if user == "" {
		user = pgadapter.DefaultUser
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", user, host, port, db)
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
