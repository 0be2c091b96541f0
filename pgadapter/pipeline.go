package pgadapter

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pipeTx is the pgx transaction a tx talks to. Writes whose results matter
// only to the transaction itself (memory rows and change-log entries) are
// queued instead of sent, and go to the server as one pipelined batch the
// next time the transaction sends anything else or commits. A batch of N
// remote changes then costs a few round trips instead of 2N: on loopback a
// round trip is worth more than the statement it carries.
//
// Every other statement first sends the queue, so the transaction always
// reads its own writes. A queued statement's error (a constraint, a lost
// connection, a serialization failure) surfaces from that later call or
// from commit, and fails the transaction as it would have anyway: in
// PostgreSQL any failed statement aborts the whole transaction.
//
// Queued change-log entries go after the queued memory rows, behind the
// change-log lock (see changeLogLock): the rows of transactions from
// different devices then run concurrently, and only the short tail of
// appends and commit is serialized.
//
// A pipeTx is not safe for concurrent use, like the transaction it wraps.
type pipeTx struct {
	pgx.Tx
	rows    pgx.Batch // queued memory writes
	changes pgx.Batch // queued change-log appends, sent after rows
	// lockChanges is the statement that takes the change-log lock, queued
	// ahead of the first append; "" once taken.
	lockChanges     string
	lockChangesArgs []any
}

// queued reports whether anything waits to be sent.
func (p *pipeTx) queued() bool { return p.rows.Len()+p.changes.Len() > 0 }

// send sends the queue as one batch and runs its result callbacks.
func (p *pipeTx) send(ctx context.Context) error {
	if !p.queued() {
		return nil
	}
	b := &pgx.Batch{QueuedQueries: p.rows.QueuedQueries}
	if p.changes.Len() > 0 && p.lockChanges != "" {
		b.Queue(p.lockChanges, p.lockChangesArgs...)
		p.lockChanges, p.lockChangesArgs = "", nil
	}
	b.QueuedQueries = append(b.QueuedQueries, p.changes.QueuedQueries...)
	p.rows, p.changes = pgx.Batch{}, pgx.Batch{}
	return p.Tx.SendBatch(ctx, b).Close()
}

func (p *pipeTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := p.send(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	return p.Tx.Exec(ctx, sql, args...)
}

func (p *pipeTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := p.send(ctx); err != nil {
		return nil, err
	}
	return p.Tx.Query(ctx, sql, args...)
}

func (p *pipeTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := p.send(ctx); err != nil {
		return errRow{err}
	}
	return p.Tx.QueryRow(ctx, sql, args...)
}

func (p *pipeTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := p.send(ctx); err != nil {
		return errBatch{err}
	}
	return p.Tx.SendBatch(ctx, b)
}

func (p *pipeTx) CopyFrom(ctx context.Context, table pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error) {
	if err := p.send(ctx); err != nil {
		return 0, err
	}
	return p.Tx.CopyFrom(ctx, table, cols, src)
}

func (p *pipeTx) Commit(ctx context.Context) error {
	if err := p.send(ctx); err != nil {
		return err
	}
	return p.Tx.Commit(ctx)
}

// errRow is a pgx.Row whose Scan returns err.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// errBatch is a pgx.BatchResults whose every call returns err.
type errBatch struct{ err error }

func (b errBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, b.err }
func (b errBatch) Query() (pgx.Rows, error)         { return nil, b.err }
func (b errBatch) QueryRow() pgx.Row                { return errRow(b) }
func (b errBatch) Close() error                     { return b.err }
func (b errBatch) Tx() pgx.Tx                       { return nil }
