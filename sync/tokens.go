package edgesync

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/athena-edge/athena-edge/core"
)

// TokenPrefix starts every device token, so that secret scanners and people
// recognise one.
const TokenPrefix = "ae_"

// Metadata keys used on the server's database.
const (
	metaTokenPrefix = "sync/token/" // + hex SHA-256 of the token → Token JSON
	metaServerID    = "sync/server_id"
)

// Token describes a device token. The plaintext is never stored: only its
// SHA-256 hash, which is also the lookup key.
type Token struct {
	ID          string    `json:"id"` // the first 16 hex digits of the hash; names the token in list/revoke
	Device      string    `json:"device"`
	ProjectID   core.ID   `json:"project_id"`
	ProjectName string    `json:"project_name,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	RevokedAt   time.Time `json:"revoked_at,omitzero"`
}

// Revoked reports whether the token was revoked.
func (t Token) Revoked() bool { return !t.RevokedAt.IsZero() }

// Tokens manages device tokens in a server database's metadata
// ([core.MetaTx]). Tokens is safe for concurrent use.
type Tokens struct {
	db  *core.DB
	now func() time.Time
}

// NewTokens returns the token store of db. It does no I/O.
func NewTokens(db *core.DB) *Tokens {
	return &Tokens{db: db, now: func() time.Time { return db.Clock().PhysicalNow() }}
}

func hashToken(plaintext string) string {
	h := sha256.Sum256([]byte(plaintext))
	return hex.EncodeToString(h[:])
}

// resolveProject turns a project name or ID into the project ID a token
// binds. A name that no project has yet binds the ID the project will have
// when an edge creates it (project IDs derive from names).
func resolveProject(ctx context.Context, tx *core.Tx, project string) (core.ID, string, error) {
	if project == "" {
		return "", "", fmt.Errorf("%w: project: required", core.ErrInvalid)
	}
	if id, err := core.ParseID(project); err == nil {
		if p, err := tx.Project(ctx, id); err == nil {
			return p.ID, p.Name, nil
		}
	}
	p, err := tx.ProjectByName(ctx, project)
	switch {
	case err == nil:
		return p.ID, p.Name, nil
	case errors.Is(err, core.ErrNotFound):
		return core.ProjectIDFor(project), project, nil
	}
	return "", "", err
}

// Create makes a token for device in project (a name or an ID) and returns
// its plaintext, which is shown once and never stored.
func (t *Tokens) Create(ctx context.Context, project, device string) (string, Token, error) {
	if err := core.CheckText("device", device, 128, true); err != nil {
		return "", Token{}, fmt.Errorf("edgesync: create token: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", Token{}, fmt.Errorf("edgesync: create token: %w", err)
	}
	plain := TokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	h := hashToken(plain)
	tok := Token{ID: h[:16], Device: device, CreatedAt: t.now().UTC().Truncate(time.Millisecond)}
	err := t.db.Update(ctx, func(tx *core.Tx) error {
		var err error
		if tok.ProjectID, tok.ProjectName, err = resolveProject(ctx, tx, project); err != nil {
			return err
		}
		b, _ := json.Marshal(tok)
		return tx.PutMeta(ctx, metaTokenPrefix+h, string(b))
	})
	if err != nil {
		return "", Token{}, fmt.Errorf("edgesync: create token: %w", err)
	}
	return plain, tok, nil
}

// List returns every token, revoked ones included, by creation time.
func (t *Tokens) List(ctx context.Context) ([]Token, error) {
	var out []Token
	err := t.db.View(ctx, func(tx *core.Tx) error {
		es, err := tx.MetaPrefix(ctx, metaTokenPrefix)
		if err != nil {
			return err
		}
		for _, e := range es {
			var tok Token
			if err := json.Unmarshal([]byte(e.Value), &tok); err != nil {
				return fmt.Errorf("token %s: %w", strings.TrimPrefix(e.Key, metaTokenPrefix)[:16], err)
			}
			out = append(out, tok)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("edgesync: list tokens: %w", err)
	}
	sortTokens(out)
	return out, nil
}

// Revoke revokes the token whose ID (or a unique prefix of it, at least 6
// hex digits) is id. It returns core.ErrNotFound if none matches. Live
// connections using the token close within the server's
// RevalidateInterval.
func (t *Tokens) Revoke(ctx context.Context, id string) (Token, error) {
	var tok Token
	err := t.db.Update(ctx, func(tx *core.Tx) error {
		if len(id) < 6 {
			return fmt.Errorf("%w: token id: at least 6 hex digits", core.ErrInvalid)
		}
		es, err := tx.MetaPrefix(ctx, metaTokenPrefix+strings.ToLower(id))
		if err != nil {
			return err
		}
		if len(es) == 0 {
			return fmt.Errorf("token %s: %w", id, core.ErrNotFound)
		}
		if len(es) > 1 {
			return fmt.Errorf("%w: token id %s is ambiguous", core.ErrInvalid, id)
		}
		if err := json.Unmarshal([]byte(es[0].Value), &tok); err != nil {
			return err
		}
		if !tok.Revoked() {
			tok.RevokedAt = t.now().UTC().Truncate(time.Millisecond)
		}
		b, _ := json.Marshal(tok)
		return tx.PutMeta(ctx, es[0].Key, string(b))
	})
	if err != nil {
		return Token{}, fmt.Errorf("edgesync: revoke token: %w", err)
	}
	return tok, nil
}

// Verify returns the live token whose plaintext is plain, or an error
// matching ErrUnauthorized (unknown or revoked). The error never contains
// the plaintext.
func (t *Tokens) Verify(ctx context.Context, plain string) (Token, error) {
	if !strings.HasPrefix(plain, TokenPrefix) || len(plain) > 256 {
		return Token{}, fmt.Errorf("edgesync: verify token: %w", ErrUnauthorized)
	}
	return t.byHash(ctx, hashToken(plain))
}

func (t *Tokens) byHash(ctx context.Context, h string) (Token, error) {
	var tok Token
	err := t.db.View(ctx, func(tx *core.Tx) error {
		v, err := tx.Meta(ctx, metaTokenPrefix+h)
		if err != nil {
			return err
		}
		return json.Unmarshal([]byte(v), &tok)
	})
	switch {
	case errors.Is(err, core.ErrNotFound):
		return Token{}, fmt.Errorf("edgesync: verify token: %w", ErrUnauthorized)
	case err != nil:
		return Token{}, fmt.Errorf("edgesync: verify token: %w", err)
	case tok.Revoked():
		return Token{}, fmt.Errorf("edgesync: verify token %s: revoked: %w", tok.ID, ErrUnauthorized)
	}
	return tok, nil
}

// CreateToken is NewTokens(db).Create.
func CreateToken(ctx context.Context, db *core.DB, project, device string) (string, Token, error) {
	return NewTokens(db).Create(ctx, project, device)
}

// ListTokens is NewTokens(db).List.
func ListTokens(ctx context.Context, db *core.DB) ([]Token, error) { return NewTokens(db).List(ctx) }

// RevokeToken is NewTokens(db).Revoke.
func RevokeToken(ctx context.Context, db *core.DB, id string) (Token, error) {
	return NewTokens(db).Revoke(ctx, id)
}

func sortTokens(ts []Token) {
	slices.SortFunc(ts, func(a, b Token) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}
