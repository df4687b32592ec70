package scheduler

// LocalLink links a Global to a Local in the same process (tests,
// benchmarks, and a hub that is its own site's local manager).
type LocalLink struct{ L *Local }

func (l LocalLink) Enqueue(jobs []*Job) error             { l.L.Enqueue(jobs); return nil }
func (l LocalLink) Cancel(id string) error                { _, err := l.L.Cancel(id); return err }
func (l LocalLink) State(since uint64) (SiteState, error) { return l.L.State(since), nil }
func (l LocalLink) Output(id string) ([]byte, error) {
	b, _ := l.L.Output(id)
	return b, nil
}
