package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// LockInfo describes who holds the state lock.
type LockInfo struct {
	ID        string    `json:"id"`
	Operation string    `json:"operation"`
	Who       string    `json:"who"`
	PID       int       `json:"pid"`
	Version   string    `json:"version,omitempty"`
	Created   time.Time `json:"created"`
	Path      string    `json:"path"`
}

// LockError is returned when the lock is held by someone else.
type LockError struct {
	Holder *LockInfo
	Err    error
}

func (e *LockError) Error() string {
	if e.Holder == nil {
		return fmt.Sprintf("error acquiring the state lock: %v", e.Err)
	}
	h := e.Holder
	return fmt.Sprintf(`error acquiring the state lock: %v

Lock Info:
  ID:        %s
  Path:      %s
  Operation: %s
  Who:       %s
  PID:       %d
  Created:   %s

hvctl acquires a state lock to protect the state from being written
by multiple users at the same time. Wait for the other operation to finish,
or use -lock-timeout to wait longer. If the holder is gone, run
"hvctl state unlock %s".`, e.Err, h.ID, h.Path, h.Operation, h.Who, h.PID, h.Created.Format(time.RFC3339), h.ID)
}

func (e *LockError) Unwrap() error { return e.Err }

// ErrLocked is wrapped by LockError when another process holds the lock.
var ErrLocked = errors.New("state is locked")

// Lock is a held state lock. The lock is an flock on PATH.lock, so it is
// released by the kernel if the holder dies; the holder's details are in
// PATH.lock.info for others to read.
type Lock struct {
	f      *os.File
	remote func() error // a backend's unlock
	info   LockInfo
	st     *Store
}

// Info returns the lock's holder info.
func (l *Lock) Info() LockInfo { return l.info }

func (st *Store) lockPath() string     { return st.Path + ".lock" }
func (st *Store) lockInfoPath() string { return st.Path + ".lock.info" }

// Lock acquires the state lock for operation, retrying until timeout.
func (st *Store) Lock(ctx context.Context, operation string, timeout time.Duration) (*Lock, error) {
	if st.Backend != nil {
		info := newLockInfo(operation, st.Backend.Describe())
		unlock, err := st.Backend.Lock(ctx, info, timeout)
		if err != nil {
			return nil, err
		}
		return &Lock{remote: unlock, info: info, st: st}, nil
	}
	if err := os.MkdirAll(st.Dir(), 0o700); err != nil {
		return nil, fmt.Errorf("lock state: %w", err)
	}
	f, err := os.OpenFile(st.lockPath(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock state: %w", err)
	}
	deadline := time.Now().Add(timeout)
	delay := 50 * time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock state: %w", err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, &LockError{Holder: st.readLockInfo(), Err: ErrLocked}
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, &LockError{Holder: st.readLockInfo(), Err: ctx.Err()}
		case <-time.After(delay):
		}
		if delay < time.Second {
			delay *= 2
		}
	}
	l := &Lock{f: f, st: st, info: newLockInfo(operation, st.Path)}
	b, _ := json.MarshalIndent(l.info, "", "  ")
	if err := WriteFileAtomic(st.lockInfoPath(), b); err != nil {
		l.Unlock()
		return nil, fmt.Errorf("lock state: %w", err)
	}
	return l, nil
}

// newLockInfo describes this process holding the lock of the state at where.
func newLockInfo(operation, where string) LockInfo {
	who := "unknown"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	if h, err := os.Hostname(); err == nil {
		who += "@" + h
	}
	return LockInfo{ID: newLineage(), Operation: operation, Who: who, PID: os.Getpid(),
		Version: Version, Created: time.Now().UTC().Truncate(time.Second), Path: where}
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	if l != nil && l.remote != nil {
		f := l.remote
		l.remote = nil
		return f()
	}
	if l == nil || l.f == nil {
		return nil
	}
	os.Remove(l.st.lockInfoPath())
	err := unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
	l.f = nil
	return err
}

func (st *Store) readLockInfo() *LockInfo {
	b, err := os.ReadFile(st.lockInfoPath())
	if err != nil {
		return nil
	}
	var li LockInfo
	if json.Unmarshal(b, &li) != nil {
		return nil
	}
	return &li
}

// LockInfoHint returns the lock holder's info as its info file says,
// without touching the lock (LockHolder probes it, which can make a
// concurrent Lock fail): nil when there is no info file or its process
// is gone. A hint only: the lock is the flock.
func (st *Store) LockInfoHint() *LockInfo {
	if st.Backend != nil {
		return st.LockHolder()
	}
	li := st.readLockInfo()
	if li == nil || li.PID <= 0 || unix.Kill(li.PID, 0) == unix.ESRCH {
		return nil
	}
	// An info file outlives its lock when the holder was killed before
	// removing it, and its PID may be reused by then (pid_max is 32768
	// on small machines): ask the kernel whether the lock file is
	// flocked at all, which does not touch the lock.
	if held, ok := flocked(st.lockPath()); ok && !held {
		return nil
	}
	return li
}

// flocked reports whether some process holds an flock on path, from
// /proc/locks; ok is false when that cannot be told.
func flocked(path string) (held, ok bool) {
	var fi unix.Stat_t
	if err := unix.Stat(path, &fi); err != nil {
		return false, false
	}
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return false, false
	}
	return procLocksHas(string(b), uint64(fi.Dev), fi.Ino), true
}

// procLocksHas reports whether the /proc/locks text lists an FLOCK on
// the inode ino of device dev ("1: FLOCK ADVISORY WRITE 123 fe:00:4711 0 EOF").
func procLocksHas(text string, dev, ino uint64) bool {
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(dev), unix.Minor(dev), ino)
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		// "->" marks a waiter, not a holder.
		if len(f) < 6 || f[1] != "FLOCK" {
			continue
		}
		if f[5] == want {
			return true
		}
	}
	return false
}

// LockHolder returns the current lock holder's info, or nil when unlocked.
func (st *Store) LockHolder() *LockInfo {
	if st.Backend != nil {
		li, err := st.Backend.LockHolder(st.ctx())
		if err != nil {
			return &LockInfo{ID: "(unknown: " + err.Error() + ")", Path: st.Backend.Describe()}
		}
		return li
	}
	f, err := os.OpenFile(st.lockPath(), os.O_RDWR, 0o600)
	if err != nil {
		return nil
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return nil
	}
	if li := st.readLockInfo(); li != nil {
		return li
	}
	return &LockInfo{ID: "(unknown)", Path: st.Path}
}

// ForceUnlock removes a lock whose holder is gone. The lock is an flock,
// which the kernel drops when its holder dies, so a live holder cannot be
// unlocked from outside: ForceUnlock refuses then, naming the process.
func (st *Store) ForceUnlock(id string) error {
	if st.Backend != nil {
		return st.Backend.ForceUnlock(st.ctx(), id)
	}
	li := st.readLockInfo()
	if li != nil && li.ID != id {
		return fmt.Errorf("lock ID %q does not match the current lock %q", id, li.ID)
	}
	if holder := st.LockHolder(); holder != nil {
		if holder.PID > 0 && unix.Kill(holder.PID, 0) == nil {
			return fmt.Errorf("the lock is held by a running process (PID %d, %s, operation %q); stop that process first", holder.PID, holder.Who, holder.Operation)
		}
	}
	if li == nil {
		return fmt.Errorf("no lock with ID %q: the state is not locked", id)
	}
	if err := os.Remove(st.lockInfoPath()); err != nil {
		return fmt.Errorf("unlock: %w", err)
	}
	return nil
}
