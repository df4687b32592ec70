package scheduler

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// KeyTTL is how long a submit's idempotency key is remembered.
const KeyTTL = 24 * time.Hour

// MaxKeyLen bounds an idempotency key.
const MaxKeyLen = 128

// submission is what a key stands for: the jobs one submit made.
type submission struct {
	At      time.Time
	Spec    [32]byte // hash of the spec, to refuse a key reused for another
	First   string
	ArrayID string
	Count   int
}

func specHash(spec *Spec) [32]byte {
	b, _ := json.Marshal(spec)
	return sha256.Sum256(b)
}

// SubmitKey is an idempotency key as the control log keeps it: recorded
// with its submit's jobs in one entry, so a submit retried on a new
// leader (or after a restart) finds the jobs the first one made.
type SubmitKey struct {
	Key     string    `json:"key"`
	At      time.Time `json:"at"`
	Spec    string    `json:"spec"` // hex SHA-256 of the spec
	First   string    `json:"first"`
	ArrayID string    `json:"array_id,omitempty"`
	Count   int       `json:"count"`
}

// KeyJournal is a Journal that also keeps idempotency keys.
type KeyJournal interface {
	Journal
	RecordSubmit(jobs []*Job, key SubmitKey) error
}

func (s *submission) record(key string) SubmitKey {
	return SubmitKey{Key: key, At: s.At, Spec: hex.EncodeToString(s.Spec[:]), First: s.First, ArrayID: s.ArrayID, Count: s.Count}
}

// RestoreKeys replaces the remembered idempotency keys with keys (as
// replayed from the journal); expired and malformed ones are dropped.
func (g *Global) RestoreKeys(keys []SubmitKey) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.keys, g.keyOrder = map[string]*submission{}, nil
	sort.SliceStable(keys, func(i, j int) bool { return keys[i].At.Before(keys[j].At) })
	for _, k := range keys {
		h, err := hex.DecodeString(k.Spec)
		if err != nil || len(h) != 32 || k.Key == "" {
			continue
		}
		s := &submission{At: k.At, First: k.First, ArrayID: k.ArrayID, Count: k.Count}
		copy(s.Spec[:], h)
		if _, ok := g.keys[k.Key]; !ok {
			g.keyOrder = append(g.keyOrder, k.Key)
		}
		g.keys[k.Key] = s
	}
	g.expireKeysLocked()
}

// replayLocked returns copies of the jobs key made, or nil when the key
// is new (or ""). A key reused with another spec is an error.
func (g *Global) replayLocked(key string, spec *Spec) ([]*Job, error) {
	if key == "" {
		return nil, nil
	}
	if len(key) > MaxKeyLen {
		return nil, &SpecError{"idempotency_key", fmt.Sprintf("longer than %d characters", MaxKeyLen)}
	}
	g.expireKeysLocked()
	s := g.keys[key]
	if s == nil {
		return nil, nil
	}
	if s.Spec != specHash(spec) {
		return nil, &SpecError{"idempotency_key", "already used for a different job spec; send a new key with a new submit"}
	}
	ids := []string{s.First}
	if s.ArrayID != "" {
		ids = make([]string, s.Count)
		for i := range ids {
			ids[i] = fmt.Sprintf("%s.%d", s.ArrayID, i)
		}
	}
	out := make([]*Job, 0, len(ids))
	for _, id := range ids {
		if j := g.jobs[id]; j != nil {
			c := *j
			out = append(out, &c)
		}
	}
	return out, nil
}

// newSubmission is what key will stand for once jobs are made.
func (g *Global) newSubmission(spec *Spec, jobs []*Job) *submission {
	return &submission{At: g.Clock(), Spec: specHash(spec), First: jobs[0].ID, ArrayID: jobs[0].ArrayID, Count: len(jobs)}
}

// rememberLocked records that key made the jobs of s.
func (g *Global) rememberLocked(key string, s *submission) {
	if key == "" || s == nil {
		return
	}
	if g.keys == nil {
		g.keys = map[string]*submission{}
	}
	g.keys[key] = s
	g.keyOrder = append(g.keyOrder, key)
}

// expireKeysLocked forgets keys older than KeyTTL.
func (g *Global) expireKeysLocked() {
	now := g.Clock()
	n := 0
	for n < len(g.keyOrder) {
		s := g.keys[g.keyOrder[n]]
		if s != nil && now.Sub(s.At) < KeyTTL {
			break
		}
		delete(g.keys, g.keyOrder[n])
		n++
	}
	g.keyOrder = g.keyOrder[n:]
}

// PageQuery selects a page of the job list.
type PageQuery struct {
	State State
	// Array keeps the jobs of one array job, or the job of that ID.
	Array string
	// After is the last job of the previous page ("" = from the start).
	After string
	Limit int
}

// Page returns up to q.Limit jobs (0 = every one) in submission order after q.After,
// and the After of the next page ("" when this is the last).
func (g *Global) Page(q PageQuery) ([]*Job, string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	start := 0
	if q.After != "" {
		if _, ok := g.jobs[q.After]; !ok {
			return nil, "", &SpecError{"after", "no job " + q.After}
		}
		for i, id := range g.order {
			if id == q.After {
				start = i + 1
				break
			}
		}
	}
	out := []*Job{}
	for i := start; i < len(g.order); i++ {
		j := g.jobs[g.order[i]]
		if q.State != "" && j.State != q.State {
			continue
		}
		if q.Array != "" && j.ArrayID != q.Array && j.ID != q.Array {
			continue
		}
		if q.Limit > 0 && len(out) == q.Limit {
			return out, out[len(out)-1].ID, nil
		}
		c := *j
		out = append(out, &c)
	}
	return out, "", nil
}
