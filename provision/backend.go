package provision

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Backend keeps a Store's state somewhere other than local files (the
// pg and s3 backends). The Store does the framing, encryption and
// replay; a backend stores opaque bytes:
//
//   - the snapshot: the state file's bytes (JSON, or an encryption
//     envelope), at a serial;
//   - the journal: batches of frames appended after the snapshot, each
//     exactly what a local Store appends to PATH.journal in one write
//     (plain frames, or one frame holding an envelope of them). A
//     backend returns them concatenated, so the journal decodes as a
//     local one does.
//
// Every write names the serial the writer last saw stored (prev): a
// backend refuses a write whose prev is not the stored head serial
// (ErrStaleSerial), so a writer that lost the lock, or whose copy is
// older than what is stored, never overwrites newer state.
type Backend interface {
	// Describe says where the state is, for messages.
	Describe() string
	// Load returns the snapshot (nil: no state yet), the journal after
	// it and the stored head serial (the snapshot's, or the last
	// journal batch's).
	Load(ctx context.Context) (snap, journal []byte, head uint64, err error)
	// WriteSnapshot replaces the snapshot with snap at serial and
	// empties the journal, in one transaction.
	WriteSnapshot(ctx context.Context, snap []byte, serial, prev uint64) error
	// AppendJournal adds a batch whose last record has serial last.
	// A backend that cannot append cheaply returns ErrNoAppend and the
	// Store writes a snapshot instead (compaction on every batch).
	AppendJournal(ctx context.Context, batch []byte, last, prev uint64) error
	// Lock takes the state lock for the operation, waiting up to
	// timeout; a held lock gives a *LockError naming the holder.
	Lock(ctx context.Context, info LockInfo, timeout time.Duration) (unlock func() error, err error)
	// LockHolder returns the holder's info, or nil when unlocked.
	LockHolder(ctx context.Context) (*LockInfo, error)
	// ForceUnlock releases a lock whose holder is gone.
	ForceUnlock(ctx context.Context, id string) error
}

// ErrStaleSerial is returned by a backend for a write from a writer
// whose serial is not the stored one.
var ErrStaleSerial = errors.New("the stored state is newer than this writer's copy (serial mismatch)")

// ErrNoAppend is returned by Backend.AppendJournal when the backend
// keeps no journal; the Store compacts instead.
var ErrNoAppend = errors.New("backend keeps no journal")

// StaleError reports a refused write with both serials.
type StaleError struct {
	Where        string
	Stored, Have uint64
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("state in %s: refusing to write: the stored state is at serial %d but this hvctl's copy follows serial %d; another writer changed it (was the lock forced?). Nothing was written; run the command again", e.Where, e.Stored, e.Have)
}

func (e *StaleError) Unwrap() error { return ErrStaleSerial }

// Describe says where the state is: the backend's description, or the
// state file's path.
func (st *Store) Describe() string {
	if st.Backend != nil {
		return st.Backend.Describe()
	}
	return st.Path
}

func (st *Store) ctx() context.Context { return context.Background() }
