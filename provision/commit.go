package provision

import (
	"errors"
	"fmt"
	"sync"
)

// committer batches journal records (group commit). A change is made to
// the in-memory state and framed under the engine's state mutex, so the
// journal's order is the state's. The first waiter that finds no write
// in progress becomes the leader: it takes every frame queued so far,
// writes them with one write and one fsync, and wakes everyone whose
// record it carried. Changes that complete while an fsync runs go
// together in the next one.
type committer struct {
	// Guarded by Engine.stateMu.
	buf    []byte
	queued uint64
	last   uint64 // the serial of the last record in buf

	mu       sync.Mutex
	cond     *sync.Cond
	durable  uint64
	flushing bool
	err      error // sticky: once the journal cannot be written, nothing more is recorded
	batches  int
}

func (c *committer) init() {
	if c.cond == nil {
		c.cond = sync.NewCond(&c.mu)
	}
}

// putResource stores r in st and makes the change durable.
func (e *Engine) putResource(st *State, r *ResourceState) error {
	return e.journal(st, func() *Record {
		st.put(r)
		cp := *r
		return &Record{Op: OpPut, Resource: &cp}
	})
}

// removeResource drops addr from st (bumping its generation) and makes
// the change durable.
func (e *Engine) removeResource(st *State, addr string) error {
	return e.journal(st, func() *Record {
		st.remove(addr)
		return &Record{Op: OpRemove, Address: addr, Generation: st.Generations[addr]}
	})
}

// journal runs f under the state mutex (f changes st and returns the
// record of the change, or nil for none) and returns once the record is
// on disk.
func (e *Engine) journal(st *State, f func() *Record) error {
	e.stateMu.Lock()
	rec := f()
	if rec == nil {
		e.stateMu.Unlock()
		return nil
	}
	st.Serial++
	rec.Serial, rec.Lineage = st.Serial, st.Lineage
	buf, err := appendFrame(e.commits.buf, rec)
	if err != nil {
		e.stateMu.Unlock()
		return err
	}
	e.commits.buf = buf
	e.commits.last = rec.Serial
	e.commits.queued++
	seq := e.commits.queued
	e.stateMu.Unlock()
	return e.waitDurable(st, seq)
}

func (e *Engine) waitDurable(st *State, seq uint64) error {
	c := &e.commits
	c.mu.Lock()
	defer c.mu.Unlock()
	c.init()
	for c.durable < seq && c.err == nil {
		if c.flushing {
			c.cond.Wait()
			continue
		}
		c.flushing = true
		c.mu.Unlock()
		upto, err := e.flush(st)
		c.mu.Lock()
		c.flushing = false
		c.batches++
		if err != nil {
			c.err = err
		} else if upto > c.durable {
			c.durable = upto
		}
		c.cond.Broadcast()
	}
	if c.durable >= seq {
		return nil
	}
	return c.err
}

// flush writes the queued frames and, when the journal has grown past
// the store's compaction size, compacts it into a snapshot. It returns
// the sequence number of the last record now durable.
func (e *Engine) flush(st *State) (uint64, error) {
	e.stateMu.Lock()
	buf, upto, last := e.commits.buf, e.commits.queued, e.commits.last
	e.commits.buf = nil
	e.stateMu.Unlock()
	err := e.Store.appendJournal(buf, last)
	switch {
	case errors.Is(err, ErrNoAppend):
		// The backend keeps no journal: every batch is a snapshot.
	case err != nil:
		return 0, err
	case e.Store.JournalSize() < e.Store.compactAt():
		return upto, nil
	}
	// Compact: the snapshot holds every change made so far, queued or
	// not, so their frames are dropped and their waiters released.
	e.stateMu.Lock()
	defer e.stateMu.Unlock()
	if err := e.Store.Write(st); err != nil {
		return upto, fmt.Errorf("compact state journal: %w", err)
	}
	e.commits.buf = nil
	return e.commits.queued, nil
}

// resetCommits starts an operation's group commit afresh.
func (e *Engine) resetCommits() {
	e.stateMu.Lock()
	e.commits.buf, e.commits.queued = nil, 0
	e.stateMu.Unlock()
	c := &e.commits
	c.mu.Lock()
	c.init()
	c.durable, c.err, c.batches = 0, nil, 0
	c.mu.Unlock()
}

// CommitBatches is how many journal writes (fsyncs) the last Apply made.
func (e *Engine) CommitBatches() int {
	e.commits.mu.Lock()
	defer e.commits.mu.Unlock()
	return e.commits.batches
}
