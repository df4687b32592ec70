package provision

import (
	"bytes"

	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/hvctl/hvctl/provision/statecrypt"
	"hash/crc32"
	"io/fs"
	"os"
)

// The state journal (PATH.journal) is a write-ahead log of resource
// changes made since the state file (the snapshot) was written. Each
// record is one frame:
//
//	length  uint32, big endian: the payload's size
//	crc     uint32, big endian: CRC-32C of the payload
//	payload JSON: a Record
//
// A record applies to the snapshot with the same lineage when its serial
// is the state's serial + 1; records at or below the snapshot's serial
// are already in it (a crash between writing a snapshot and emptying the
// journal leaves them behind). Writers append whole batches with one
// write and one fsync (group commit); a writer killed mid-write leaves a
// torn last frame, which readers ignore and the next writer truncates.

// Journal record operations.
const (
	// OpPut stores Resource at its address (insert or replace).
	OpPut = "put"
	// OpRemove drops Address and sets its generation to Generation.
	OpRemove = "remove"
)

// maxRecord bounds one record's payload: a frame that claims more is
// corrupt, not a big resource.
const maxRecord = 64 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Record is one resource change in the state journal.
type Record struct {
	Serial     uint64         `json:"serial"`
	Lineage    string         `json:"lineage"`
	Op         string         `json:"op"`
	Resource   *ResourceState `json:"resource,omitempty"`
	Address    string         `json:"address,omitempty"`
	Generation int            `json:"generation,omitempty"`
}

// appendFrame appends r's frame to b.
func appendFrame(b []byte, r *Record) ([]byte, error) {
	p, err := json.Marshal(r)
	if err != nil {
		return b, fmt.Errorf("encode journal record: %w", err)
	}
	return AppendFrame(b, p), nil
}

// AppendFrame appends payload p to b as one journal frame (length,
// CRC-32C, payload). Provider worlds use the same framing.
func AppendFrame(b, p []byte) []byte {
	var h [8]byte
	putFrameHeader(h[:], p)
	b = append(b, h[:]...)
	return append(b, p...)
}

// putFrameHeader writes the length and checksum of payload p into h[:8].
func putFrameHeader(h []byte, p []byte) {
	binary.BigEndian.PutUint32(h[0:4], uint32(len(p)))
	binary.BigEndian.PutUint32(h[4:8], crc32.Checksum(p, crcTable))
}

// SplitFrames returns the payloads of every whole frame in b and the
// length of the bytes they take. A torn last frame (a writer killed
// mid-append) or a zero-filled tail ends them without an error; a
// damaged frame with more data after it is an error naming the file
// (name) and the byte offset. offsets[i] is where payload i's frame
// starts.
func SplitFrames(name string, b []byte) (payloads [][]byte, offsets []int, valid int, err error) {
	off := 0
	for off < len(b) {
		rest := b[off:]
		if len(rest) < 8 {
			return payloads, offsets, off, nil // torn header
		}
		n := int(binary.BigEndian.Uint32(rest[0:4]))
		sum := binary.BigEndian.Uint32(rest[4:8])
		if n == 0 && allZero(rest) {
			// Preallocated or zero-filled tail (a crash of the machine
			// on some file systems): nothing was written here.
			return payloads, offsets, off, nil
		}
		if n == 0 || n > maxRecord {
			return payloads, offsets, off, fmt.Errorf("journal %s: record at byte %d has invalid length %d", name, off, n)
		}
		if len(rest) < 8+n {
			return payloads, offsets, off, nil // torn payload
		}
		p := rest[8 : 8+n]
		if crc32.Checksum(p, crcTable) != sum {
			if len(rest) == 8+n {
				return payloads, offsets, off, nil // the last frame, torn
			}
			return payloads, offsets, off, fmt.Errorf("journal %s: record at byte %d is damaged (checksum mismatch) and more records follow it", name, off)
		}
		payloads = append(payloads, p)
		offsets = append(offsets, off)
		off += 8 + n
	}
	return payloads, offsets, off, nil
}

// DecodeJournal parses a state journal's bytes; name is used in errors.
// It returns the records of every whole frame and the length of the
// bytes they take: a torn last frame (a writer killed mid-append) ends
// the journal without an error. A damaged frame with more data after
// it, or a frame whose payload is not a valid record, is an error naming
// the file and the byte offset.
func DecodeJournal(name string, b []byte) (recs []*Record, valid int, err error) {
	payloads, offsets, valid, err := SplitFrames(name, b)
	if err != nil {
		return nil, 0, fmt.Errorf("state %w; restore the state from %s.backup, or remove the journal to lose the changes since the last snapshot", err, trimJournalSuffix(name))
	}
	for i, p := range payloads {
		r, err := decodeRecord(p)
		if err != nil {
			return recs, offsets[i], fmt.Errorf("state journal %s: record at byte %d: %w", name, offsets[i], err)
		}
		recs = append(recs, r)
	}
	return recs, valid, nil
}

func trimJournalSuffix(name string) string {
	const s = ".journal"
	if len(name) > len(s) && name[len(name)-len(s):] == s {
		return name[:len(name)-len(s)]
	}
	return name
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func decodeRecord(p []byte) (*Record, error) {
	var r Record
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("not a valid record: %w", err)
	}
	if dec.More() {
		return nil, errors.New("not a valid record: trailing data")
	}
	if r.Lineage == "" {
		return nil, errors.New("record has no lineage")
	}
	if r.Serial == 0 {
		return nil, errors.New("record has no serial")
	}
	switch r.Op {
	case OpPut:
		if r.Resource == nil || r.Resource.Address == "" {
			return nil, errors.New("put record has no resource address")
		}
		if r.Address != "" {
			return nil, errors.New("put record has an address besides its resource")
		}
		switch r.Resource.Status {
		case StatusPending, StatusCreated, StatusReady, StatusTainted:
		default:
			return nil, fmt.Errorf("resource %s has unknown status %q", r.Resource.Address, r.Resource.Status)
		}
		r.Resource.Attrs = normalizeAttrs(r.Resource.Attrs)
	case OpRemove:
		if r.Address == "" {
			return nil, errors.New("remove record has no address")
		}
		if r.Resource != nil {
			return nil, errors.New("remove record carries a resource")
		}
		if r.Generation < 1 {
			return nil, fmt.Errorf("remove record of %s has generation %d, want at least 1", r.Address, r.Generation)
		}
	default:
		return nil, fmt.Errorf("unknown operation %q", r.Op)
	}
	return &r, nil
}

// replay applies recs to s (the snapshot they follow): records of
// another lineage or at or below s's serial are skipped; the rest must
// follow each other serial by serial.
func replay(name string, s *State, recs []*Record) error {
	for _, r := range recs {
		if r.Lineage != s.Lineage || r.Serial <= s.Serial {
			continue
		}
		if r.Serial != s.Serial+1 {
			return fmt.Errorf("state journal %s: record %d follows serial %d: records are missing", name, r.Serial, s.Serial)
		}
		r.apply(s)
		s.Serial = r.Serial
	}
	return nil
}

func (r *Record) apply(s *State) {
	switch r.Op {
	case OpPut:
		rs := *r.Resource
		s.put(&rs)
	case OpRemove:
		if i := s.search(r.Address); i < len(s.Resources) && s.Resources[i].Address == r.Address {
			s.Resources = append(s.Resources[:i], s.Resources[i+1:]...)
		}
		if s.Generations == nil {
			s.Generations = map[string]int{}
		}
		s.Generations[r.Address] = r.Generation
	}
}

func (st *Store) journalPath() string { return st.Path + ".journal" }

// readJournal returns the journal's records; a missing journal has none.
func (st *Store) readJournal() ([]*Record, error) {
	b, err := os.ReadFile(st.journalPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state journal: %w", err)
	}
	recs, _, err := st.decodeJournal(st.journalPath(), b)
	return recs, err
}

// decodeJournal is DecodeJournal for a journal that may hold encrypted
// batches: a frame whose payload is an envelope holds the frames of one
// batch, sealed.
func (st *Store) decodeJournal(name string, b []byte) (recs []*Record, valid int, err error) {
	payloads, offsets, valid, err := SplitFrames(name, b)
	if err != nil {
		return nil, 0, fmt.Errorf("state %w; restore the state from %s.backup, or remove the journal to lose the changes since the last snapshot", err, trimJournalSuffix(name))
	}
	sealed := false
	for _, p := range payloads {
		if statecrypt.IsSealed(p) {
			sealed = true
		}
	}
	if !sealed {
		return DecodeJournal(name, b)
	}
	for i, p := range payloads {
		if !statecrypt.IsSealed(p) {
			r, err := decodeRecord(p)
			if err != nil {
				return recs, offsets[i], fmt.Errorf("state journal %s: record at byte %d: %w", name, offsets[i], err)
			}
			recs = append(recs, r)
			continue
		}
		inner, err := st.open(fmt.Sprintf("%s (batch at byte %d)", name, offsets[i]), p)
		if err != nil {
			return recs, offsets[i], err
		}
		rs, v, err := DecodeJournal(fmt.Sprintf("%s (batch at byte %d)", name, offsets[i]), inner)
		if err != nil {
			return recs, offsets[i], err
		}
		if v != len(inner) {
			return recs, offsets[i], fmt.Errorf("state journal %s: the encrypted batch at byte %d ends in a torn record", name, offsets[i])
		}
		recs = append(recs, rs...)
	}
	return recs, valid, nil
}

// openJournal opens the journal for appending, cutting off a torn tail
// left by a writer that died. Called with st.mu held.
func (st *Store) openJournal() error {
	if st.jf != nil {
		return nil
	}
	f, err := os.OpenFile(st.journalPath(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open state journal: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open state journal: %w", err)
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil && len(b) > 0 {
		f.Close()
		return fmt.Errorf("read state journal: %w", err)
	}
	_, valid, err := st.decodeJournal(st.journalPath(), b)
	if err != nil {
		f.Close()
		return err
	}
	if int64(valid) != fi.Size() {
		if err := f.Truncate(int64(valid)); err != nil {
			f.Close()
			return fmt.Errorf("truncate torn state journal: %w", err)
		}
	}
	st.jf, st.jsize = f, int64(valid)
	return nil
}

// AppendJournal appends a batch of encoded frames with one write and one
// fsync. The state file must exist: the journal follows a snapshot.
// last is the serial of the batch's last record.
func (st *Store) appendJournal(frames []byte, last uint64) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(frames) == 0 {
		return nil
	}
	if st.Sealer != nil {
		env, err := st.Sealer.Seal(frames)
		if err != nil {
			return fmt.Errorf("encrypt state journal: %w", err)
		}
		frames = AppendFrame(nil, env)
	}
	if st.Backend != nil {
		if err := st.Backend.AppendJournal(st.ctx(), frames, last, st.head); err != nil {
			if errors.Is(err, ErrNoAppend) {
				return err
			}
			return fmt.Errorf("write state journal to %s: %w", st.Backend.Describe(), err)
		}
		st.head = last
		st.jsize += int64(len(frames))
		st.written.Add(int64(len(frames)))
		return nil
	}
	if err := st.openJournal(); err != nil {
		return err
	}
	if _, err := st.jf.WriteAt(frames, st.jsize); err != nil {
		// Whatever part was written is a torn tail for the next opener.
		st.closeJournal()
		return fmt.Errorf("write state journal: %w", err)
	}
	if err := st.jf.Sync(); err != nil {
		st.closeJournal()
		return fmt.Errorf("sync state journal: %w", err)
	}
	st.jsize += int64(len(frames))
	st.written.Add(int64(len(frames)))
	return nil
}

// resetJournal empties the journal after a snapshot. Called with st.mu
// held. A crash before it leaves records the snapshot already has;
// replay skips them by serial.
func (st *Store) resetJournal() error {
	if st.Backend != nil {
		return nil
	}
	if st.jf == nil {
		if _, err := os.Stat(st.journalPath()); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err := st.openJournal(); err != nil {
			// A damaged journal is superseded by the snapshot.
			return os.Remove(st.journalPath())
		}
	}
	if st.jsize == 0 {
		return nil
	}
	if err := st.jf.Truncate(0); err != nil {
		st.closeJournal()
		return fmt.Errorf("empty state journal: %w", err)
	}
	if err := st.jf.Sync(); err != nil {
		st.closeJournal()
		return fmt.Errorf("empty state journal: %w", err)
	}
	st.jsize = 0
	return nil
}

func (st *Store) closeJournal() {
	if st.jf != nil {
		st.jf.Close()
		st.jf = nil
	}
}

// Close releases the journal's file; the Store stays usable.
func (st *Store) Close() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.closeJournal()
	return nil
}

// JournalSize is the journal's size as this Store last appended to it.
func (st *Store) JournalSize() int64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.jsize
}

// BytesWritten counts the bytes this Store wrote: snapshots, backups and
// journal records.
func (st *Store) BytesWritten() int64 { return st.written.Load() }

// compactAt is the journal size at which the engine compacts it into a
// snapshot: CompactBytes (default 16 MiB), and at least twice the last
// snapshot's size, so that the bytes written by compactions stay
// proportional to the journal's.
func (st *Store) compactAt() int64 {
	n := st.CompactBytes
	if n <= 0 {
		n = 16 << 20
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if s := 2 * st.snapSize; s > n {
		n = s
	}
	return n
}
