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
	stmts map[string]*stmt
	ctx   context.Context // the context of the running transaction
	// inTx is set between begin and end. lost is set when a statement
	// failed in a way that made SQLite roll back the whole transaction
	// (an I/O error, a full disk in a statement without a statement
	// journal, an interrupt): every later statement fails with it, instead
	// of running, and committing, on its own outside the transaction.
	inTx bool
	lost error
}

// stmt is a cached statement and the text values bound to it. SQLite
// keeps bindings across resets, so a text parameter bound to the same
// value as on the statement's previous run is not bound again: binding
// text copies it into WebAssembly memory with two calls into SQLite
// (about 1 µs), and a batch of inserts repeats most of its text values
// (project, model, type, device, kind, status, empty strings) row after
// row.
type stmt struct {
	*sqlite3.Stmt
	text  []string // text[i] is bound to parameter i+1 if bound[i]
	bound []bool
}

func openConn(ctx context.Context, name string, flags sqlite3.OpenFlag) (*conn, error) {
	c, err := sqlite3.OpenFlags(name, flags)
	if err != nil {
		return nil, err
	}
	return &conn{c: c, stmts: map[string]*stmt{}, ctx: context.Background()}, nil
}

// prep returns the cached statement for sql, preparing it on first use.
// Callers Reset it when done (see query/exec).
func (c *conn) prep(sql string) (*stmt, error) {
	if st, ok := c.stmts[sql]; ok {
		return st, nil
	}
	st, _, err := c.c.PrepareFlags(sql, sqlite3.PREPARE_PERSISTENT)
	if err != nil {
		return nil, err
	}
	n := st.BindCount()
	s := &stmt{Stmt: st, text: make([]string, n), bound: make([]bool, n)}
	c.stmts[sql] = s
	return s, nil
}

// exec runs a cached statement with args bound.
func (c *conn) exec(sql string, args ...any) error {
	if c.lost != nil {
		return c.lost
	}
	st, err := c.prep(sql)
	if err != nil {
		return err
	}
	if err := st.bindAll(args); err != nil {
		_ = st.Reset()
		return err
	}
	if err := st.Exec(); err != nil {
		return c.failed(err)
	}
	return nil
}

// failed notes whether err, a failed statement's error, cost the whole
// transaction, and returns it.
func (c *conn) failed(err error) error {
	if c.inTx && c.lost == nil && c.c.GetAutocommit() {
		c.lost = fmt.Errorf("transaction rolled back: %w", err)
	}
	return err
}

// query runs a cached statement and calls row for each result row.
func (c *conn) query(sql string, args []any, row func(*sqlite3.Stmt) error) error {
	if c.lost != nil {
		return c.lost
	}
	st, err := c.prep(sql)
	if err != nil {
		return err
	}
	defer st.Reset()
	if err := st.bindAll(args); err != nil {
		return err
	}
	for st.Step() {
		if err := row(st.Stmt); err != nil {
			return err
		}
	}
	if err := st.Err(); err != nil {
		return c.failed(err)
	}
	return nil
}

func (st *stmt) bindAll(args []any) error {
	for i, a := range args {
		var err error
		switch v := a.(type) {
		case string:
			if err := st.bindText(i, v); err != nil {
				return err
			}
			continue
		case core.ID:
			if err := st.bindText(i, string(v)); err != nil {
				return err
			}
			continue
		case nil:
			err = st.BindNull(i + 1)
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
			err = fmt.Errorf("bind %d: unsupported type %T", i+1, a)
		}
		if i < len(st.bound) {
			st.bound[i] = false
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// bindText binds parameter i+1 to v unless it is bound to v already.
func (st *stmt) bindText(i int, v string) error {
	if i < len(st.bound) && st.bound[i] && st.text[i] == v {
		return nil
	}
	if err := st.BindText(i+1, v); err != nil {
		if i < len(st.bound) {
			st.bound[i] = false
		}
		return err
	}
	if i < len(st.bound) {
		st.text[i], st.bound[i] = v, true
	}
	return nil
}

// begin starts a transaction on behalf of ctx.
func (c *conn) begin(ctx context.Context, sql string) error {
	c.ctx = ctx
	c.c.SetInterrupt(ctx)
	c.inTx, c.lost = true, nil
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
	c.inTx, c.lost = false, nil
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
