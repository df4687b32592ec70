// Package pgstate is hvctl's pg state backend: the state in a
// PostgreSQL database through pgx, as Terraform's pg backend keeps it.
//
// A schema (default "hvctl") holds three tables:
//
//	states   one row per cluster and workspace: the snapshot (bytea,
//	         JSON or an encryption envelope), its serial, and head, the
//	         serial of the last journal batch after it
//	journal  the batches appended after the snapshot, in order; writing
//	         a snapshot deletes them in the same transaction
//	locks    the lock holder's info, for lock errors and force-unlock
//
// The lock is a session advisory lock on a key hashed from schema,
// cluster and workspace, held on the backend's connection for the whole
// operation, so PostgreSQL drops it when the holder dies (its
// connection closes). Every write is one transaction that reads head
// FOR UPDATE and refuses a writer whose serial is not head.
package pgstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hvctl/hvctl/provision"
)

// Backend is a state in PostgreSQL. Its zero value is not usable; see New.
type Backend struct {
	connStr   string
	schema    string
	cluster   string
	workspace string
	where     string

	mu     sync.Mutex
	conn   *pgx.Conn
	locked bool
}

// New returns the pg backend for the state of cluster in workspace;
// settings has conn_str and schema. It connects on first use.
func New(settings map[string]string, cluster, workspace string) (*Backend, error) {
	cfg, err := pgx.ParseConfig(settings["conn_str"])
	if err != nil {
		// pgx's message may quote the connection string: say only where.
		return nil, fmt.Errorf("pg state backend: conn_str is not a PostgreSQL connection string or URL")
	}
	schema := settings["schema"]
	if schema == "" {
		schema = "hvctl"
	}
	where := fmt.Sprintf("pg %s:%d/%s schema %s, cluster %s workspace %s", cfg.Host, cfg.Port, cfg.Database, schema, cluster, workspace)
	return &Backend{connStr: settings["conn_str"], schema: schema, cluster: cluster, workspace: workspace, where: where}, nil
}

// Describe says where the state is; never the password.
func (b *Backend) Describe() string { return b.where }

func (b *Backend) ident(table string) string {
	return pgx.Identifier{b.schema, table}.Sanitize()
}

// connect returns the backend's connection, creating the schema and
// tables on first use. Called with b.mu held.
func (b *Backend) connect(ctx context.Context) (*pgx.Conn, error) {
	if b.conn != nil && !b.conn.IsClosed() {
		return b.conn, nil
	}
	if b.locked {
		return nil, errors.New("the connection holding the state lock was lost; the lock is gone, so nothing more is written")
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(cctx, b.connStr)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := b.migrate(cctx, c); err != nil {
		c.Close(context.Background())
		return nil, err
	}
	b.conn = c
	return c, nil
}

// migrate creates the schema and tables; a transaction-scoped advisory
// lock on the schema keeps concurrent first uses from racing.
func (b *Backend) migrate(ctx context.Context, c *pgx.Conn) error {
	return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, key("schema", b.schema)); err != nil {
			return err
		}
		stmts := []string{
			`CREATE SCHEMA IF NOT EXISTS ` + pgx.Identifier{b.schema}.Sanitize(),
			`CREATE TABLE IF NOT EXISTS ` + b.ident("states") + ` (
				cluster text NOT NULL, workspace text NOT NULL,
				serial bigint NOT NULL, head bigint NOT NULL, data bytea NOT NULL,
				updated_at timestamptz NOT NULL DEFAULT now(),
				PRIMARY KEY (cluster, workspace))`,
			`CREATE TABLE IF NOT EXISTS ` + b.ident("journal") + ` (
				cluster text NOT NULL, workspace text NOT NULL, seq bigserial,
				last_serial bigint NOT NULL, data bytea NOT NULL,
				PRIMARY KEY (cluster, workspace, seq))`,
			`CREATE TABLE IF NOT EXISTS ` + b.ident("locks") + ` (
				cluster text NOT NULL, workspace text NOT NULL, info jsonb NOT NULL,
				PRIMARY KEY (cluster, workspace))`,
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("create the state tables in schema %s: %w", b.schema, err)
			}
		}
		return nil
	})
}

func key(parts ...string) int64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return int64(h.Sum64())
}

func (b *Backend) lockKey() int64 { return key("state", b.schema, b.cluster, b.workspace) }

// Load reads the snapshot and journal in one repeatable-read snapshot.
func (b *Backend) Load(ctx context.Context) (snap, journal []byte, head uint64, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, err := b.connect(ctx)
	if err != nil {
		return nil, nil, 0, err
	}
	err = pgx.BeginTxFunc(ctx, c, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var h int64
		err := tx.QueryRow(ctx, `SELECT head, data FROM `+b.ident("states")+` WHERE cluster=$1 AND workspace=$2`, b.cluster, b.workspace).Scan(&h, &snap)
		if errors.Is(err, pgx.ErrNoRows) {
			snap = nil
			return nil
		}
		if err != nil {
			return err
		}
		head = uint64(h)
		rows, err := tx.Query(ctx, `SELECT data FROM `+b.ident("journal")+` WHERE cluster=$1 AND workspace=$2 ORDER BY seq`, b.cluster, b.workspace)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d []byte
			if err := rows.Scan(&d); err != nil {
				return err
			}
			journal = append(journal, d...)
		}
		return rows.Err()
	})
	if snap == nil {
		return nil, nil, 0, err
	}
	return snap, journal, head, err
}

// head reads the stored head FOR UPDATE: (0, false) when there is no row.
func (b *Backend) head(ctx context.Context, tx pgx.Tx) (uint64, bool, error) {
	var h int64
	err := tx.QueryRow(ctx, `SELECT head FROM `+b.ident("states")+` WHERE cluster=$1 AND workspace=$2 FOR UPDATE`, b.cluster, b.workspace).Scan(&h)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	return uint64(h), err == nil, err
}

// WriteSnapshot replaces the row's snapshot and deletes its journal.
func (b *Backend) WriteSnapshot(ctx context.Context, snap []byte, serial, prev uint64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, err := b.connect(ctx)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		h, exists, err := b.head(ctx, tx)
		if err != nil {
			return err
		}
		if h != prev {
			return &provision.StaleError{Where: b.where, Stored: h, Have: prev}
		}
		if !exists {
			_, err = tx.Exec(ctx, `INSERT INTO `+b.ident("states")+` (cluster, workspace, serial, head, data) VALUES ($1, $2, $3, $3, $4)`,
				b.cluster, b.workspace, int64(serial), snap)
		} else {
			_, err = tx.Exec(ctx, `UPDATE `+b.ident("states")+` SET serial=$3, head=$3, data=$4, updated_at=now() WHERE cluster=$1 AND workspace=$2`,
				b.cluster, b.workspace, int64(serial), snap)
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM `+b.ident("journal")+` WHERE cluster=$1 AND workspace=$2`, b.cluster, b.workspace)
		return err
	})
}

// AppendJournal inserts a journal row and moves head.
func (b *Backend) AppendJournal(ctx context.Context, batch []byte, last, prev uint64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, err := b.connect(ctx)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		h, exists, err := b.head(ctx, tx)
		if err != nil {
			return err
		}
		if !exists || h != prev {
			return &provision.StaleError{Where: b.where, Stored: h, Have: prev}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+b.ident("journal")+` (cluster, workspace, last_serial, data) VALUES ($1, $2, $3, $4)`,
			b.cluster, b.workspace, int64(last), batch); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE `+b.ident("states")+` SET head=$3, updated_at=now() WHERE cluster=$1 AND workspace=$2`, b.cluster, b.workspace, int64(last))
		return err
	})
}

// Lock takes the advisory lock, polling until timeout, and records info.
func (b *Backend) Lock(ctx context.Context, info provision.LockInfo, timeout time.Duration) (func() error, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, err := b.connect(ctx)
	if err != nil {
		return nil, &provision.LockError{Err: err}
	}
	deadline := time.Now().Add(timeout)
	delay := 50 * time.Millisecond
	for {
		var ok bool
		if err := c.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, b.lockKey()).Scan(&ok); err != nil {
			return nil, &provision.LockError{Err: err}
		}
		if ok {
			break
		}
		if !time.Now().Before(deadline) {
			return nil, &provision.LockError{Holder: b.holderInfo(ctx, c), Err: provision.ErrLocked}
		}
		select {
		case <-ctx.Done():
			return nil, &provision.LockError{Holder: b.holderInfo(ctx, c), Err: ctx.Err()}
		case <-time.After(min(delay, time.Until(deadline)+time.Millisecond)):
		}
		delay = min(2*delay, time.Second)
	}
	b.locked = true
	ib, _ := json.Marshal(info)
	if _, err := c.Exec(ctx, `INSERT INTO `+b.ident("locks")+` (cluster, workspace, info) VALUES ($1, $2, $3)
		ON CONFLICT (cluster, workspace) DO UPDATE SET info = EXCLUDED.info`, b.cluster, b.workspace, ib); err != nil {
		c.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, b.lockKey())
		b.locked = false
		return nil, &provision.LockError{Err: err}
	}
	return func() error { return b.unlock(info.ID) }, nil
}

func (b *Backend) unlock(id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.locked = false
	if b.conn == nil || b.conn.IsClosed() {
		return nil // the lock went with the connection
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b.conn.Exec(ctx, `DELETE FROM `+b.ident("locks")+` WHERE cluster=$1 AND workspace=$2 AND info->>'id' = $3`, b.cluster, b.workspace, id)
	_, err := b.conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, b.lockKey())
	return err
}

// heldBy returns the server pid of the session holding the lock, or 0.
func (b *Backend) heldBy(ctx context.Context, c *pgx.Conn) (int32, error) {
	k := uint64(b.lockKey())
	var pid int32
	err := c.QueryRow(ctx, `SELECT pid FROM pg_locks WHERE locktype='advisory' AND granted
		AND classid=$1 AND objid=$2 AND objsubid=1 AND database=(SELECT oid FROM pg_database WHERE datname=current_database())`,
		uint32(k>>32), uint32(k)).Scan(&pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return pid, err
}

// holderInfo is the lock holder's recorded info, or a minimal one.
func (b *Backend) holderInfo(ctx context.Context, c *pgx.Conn) *provision.LockInfo {
	var raw []byte
	err := c.QueryRow(ctx, `SELECT info FROM `+b.ident("locks")+` WHERE cluster=$1 AND workspace=$2`, b.cluster, b.workspace).Scan(&raw)
	var li provision.LockInfo
	if err == nil && json.Unmarshal(raw, &li) == nil {
		return &li
	}
	return &provision.LockInfo{ID: "(unknown)", Path: b.where}
}

// LockHolder returns the holder's info when the advisory lock is held.
func (b *Backend) LockHolder(ctx context.Context) (*provision.LockInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, err := b.connect(ctx)
	if err != nil {
		return nil, err
	}
	pid, err := b.heldBy(ctx, c)
	if err != nil || pid == 0 {
		return nil, err
	}
	return b.holderInfo(ctx, c), nil
}

// ForceUnlock removes lock info left behind. A live holder's advisory
// lock belongs to its session and cannot be taken from outside; the
// server drops it when the holder's connection closes.
func (b *Backend) ForceUnlock(ctx context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, err := b.connect(ctx)
	if err != nil {
		return err
	}
	li := b.holderInfo(ctx, c)
	if li.ID != "(unknown)" && li.ID != id {
		return fmt.Errorf("lock ID %q does not match the current lock %q", id, li.ID)
	}
	pid, err := b.heldBy(ctx, c)
	if err != nil {
		return err
	}
	if pid != 0 {
		return fmt.Errorf("the lock is held by a live session (server pid %d; %s, PID %d, operation %q): stop that process, or end its session with SELECT pg_terminate_backend(%d)", pid, li.Who, li.PID, li.Operation, pid)
	}
	tag, err := c.Exec(ctx, `DELETE FROM `+b.ident("locks")+` WHERE cluster=$1 AND workspace=$2`, b.cluster, b.workspace)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("no lock with ID %q: the state is not locked", id)
	}
	return nil
}

// Close closes the connection (and so releases any lock).
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn == nil {
		return nil
	}
	err := b.conn.Close(context.Background())
	b.conn = nil
	return err
}

var _ provision.Backend = (*Backend)(nil)
