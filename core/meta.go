package core

import (
	"context"
	"fmt"
)

var errNoMeta = fmt.Errorf("%w: this store keeps no metadata (core.MetaTx)", ErrInvalid)

func (tx *Tx) meta() (MetaTx, error) {
	m, ok := tx.r.(MetaTx)
	if !ok {
		return nil, errNoMeta
	}
	return m, nil
}

// Meta returns the metadata value under key, or ErrNotFound.
func (tx *Tx) Meta(ctx context.Context, key string) (string, error) {
	m, err := tx.meta()
	if err != nil {
		return "", err
	}
	return m.Meta(ctx, key)
}

// MetaPrefix lists metadata entries whose key starts with prefix.
func (tx *Tx) MetaPrefix(ctx context.Context, prefix string) ([]MetaEntry, error) {
	m, err := tx.meta()
	if err != nil {
		return nil, err
	}
	return m.MetaPrefix(ctx, prefix)
}

// PutMeta sets a metadata value. Metadata is local to the replica: it is
// not recorded in the change log.
func (tx *Tx) PutMeta(ctx context.Context, key, value string) error {
	if _, err := tx.writer(); err != nil {
		return err
	}
	m, err := tx.meta()
	if err != nil {
		return err
	}
	if err := CheckText("key", key, DefaultMaxTextBytes, true); err != nil {
		return err
	}
	if err := CheckText("value", value, DefaultMaxContentBytes, false); err != nil {
		return err
	}
	return m.PutMeta(ctx, key, value)
}

// DeleteMeta removes a metadata key.
func (tx *Tx) DeleteMeta(ctx context.Context, key string) error {
	if _, err := tx.writer(); err != nil {
		return err
	}
	m, err := tx.meta()
	if err != nil {
		return err
	}
	return m.DeleteMeta(ctx, key)
}
