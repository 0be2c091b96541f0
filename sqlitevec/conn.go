package sqlitevec

import (
	"context"
	"errors"
	"fmt"

	"github.com/ncruces/go-sqlite3"

	"github.com/athena-edge/athena-edge/core"
)

// conn is one SQLite connection with its prepared statements, cached by
// SQL text for the life of the connection. A conn is used by one goroutine
// at a time: the writer under Store.writeMu, a reader while it is checked
// out of the pool.
type conn struct {
	c     *sqlite3.Conn
	stmts map[string]*sqlite3.Stmt
	ctx   context.Context // the context of the running transaction
}

func openConn(ctx context.Context, name string, flags sqlite3.OpenFlag) (*conn, error) {
	c, err := sqlite3.OpenFlags(name, flags)
	if err != nil {
		return nil, err
	}
	return &conn{c: c, stmts: map[string]*sqlite3.Stmt{}, ctx: context.Background()}, nil
}

// prep returns the cached statement for sql, preparing it on first use.
// Callers Reset it when done (see query/exec).
func (c *conn) prep(sql string) (*sqlite3.Stmt, error) {
	if st, ok := c.stmts[sql]; ok {
		return st, nil
	}
	st, _, err := c.c.PrepareFlags(sql, sqlite3.PREPARE_PERSISTENT)
	if err != nil {
		return nil, err
	}
	c.stmts[sql] = st
	return st, nil
}

// exec runs a cached statement with args bound.
func (c *conn) exec(sql string, args ...any) error {
	st, err := c.prep(sql)
	if err != nil {
		return err
	}
	if err := bindAll(st, args); err != nil {
		_ = st.Reset()
		return err
	}
	err = st.Exec()
	return err
}

// query runs a cached statement and calls row for each result row.
func (c *conn) query(sql string, args []any, row func(*sqlite3.Stmt) error) error {
	st, err := c.prep(sql)
	if err != nil {
		return err
	}
	defer st.Reset()
	if err := bindAll(st, args); err != nil {
		return err
	}
	for st.Step() {
		if err := row(st); err != nil {
			return err
		}
	}
	return st.Err()
}

func bindAll(st *sqlite3.Stmt, args []any) error {
	for i, a := range args {
		var err error
		switch v := a.(type) {
		case nil:
			err = st.BindNull(i + 1)
		case string:
			err = st.BindText(i+1, v)
		case core.ID:
			err = st.BindText(i+1, string(v))
		case int:
			err = st.BindInt64(i+1, int64(v))
		case int64:
			err = st.BindInt64(i+1, v)
		case uint64:
			err = st.BindInt64(i+1, int64(v))
		case float64:
			err = st.BindFloat(i+1, v)
		case bool:
			err = st.BindBool(i+1, v)
		case []byte:
			if v == nil {
				err = st.BindNull(i + 1)
			} else {
				err = st.BindBlob(i+1, v)
			}
		default:
			return fmt.Errorf("bind %d: unsupported type %T", i+1, a)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// begin starts a transaction on behalf of ctx.
func (c *conn) begin(ctx context.Context, sql string) error {
	c.ctx = ctx
	c.c.SetInterrupt(ctx)
	return c.c.Exec(sql)
}

// end finishes the transaction: COMMIT if commit, else ROLLBACK. It
// detaches the context first, so a cancelled context never leaves the
// connection in an open transaction.
func (c *conn) end(commit bool) error {
	var err error
	if commit {
		err = c.c.Exec(`COMMIT`)
	}
	c.c.SetInterrupt(context.Background())
	c.ctx = context.Background()
	if !c.c.GetAutocommit() {
		if rerr := c.c.Exec(`ROLLBACK`); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

func (c *conn) close() error {
	var errs []error
	for _, st := range c.stmts {
		errs = append(errs, st.Close())
	}
	c.stmts = nil
	errs = append(errs, c.c.Close())
	return errors.Join(errs...)
}

// wrap turns a driver error into the package's error vocabulary:
// "sqlitevec: op: ..." wrapping core.ErrConflict for uniqueness
// violations and the context's error for interrupts.
func (c *conn) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, sqlite3.CONSTRAINT_UNIQUE), errors.Is(err, sqlite3.CONSTRAINT_PRIMARYKEY):
		return fmt.Errorf("sqlitevec: %s: %w: %w", op, core.ErrConflict, err)
	case errors.Is(err, sqlite3.INTERRUPT) && c.ctx.Err() != nil:
		return fmt.Errorf("sqlitevec: %s: %w", op, c.ctx.Err())
	}
	return fmt.Errorf("sqlitevec: %s: %w", op, err)
}
