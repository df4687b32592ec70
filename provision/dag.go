package provision

import (
	"context"
	"errors"
	"sync"
)

// errSkipped marks a task not run because a dependency failed.
var errSkipped = errors.New("skipped because a dependency failed")

type task struct {
	id   string
	deps []string
	run  func(ctx context.Context) error
}

type slotKey struct{}

// releaseSlot gives back the parallelism slot of the task running with
// ctx: it goes on (waiting for a boot, say) without counting against the
// bound. Later calls do nothing.
func releaseSlot(ctx context.Context) {
	if f, ok := ctx.Value(slotKey{}).(func()); ok {
		f()
	}
}

// runDAG runs tasks in dependency order with at most parallelism at once
// (<= 0: unlimited); a task that calls releaseSlot stops counting. A task whose dependency failed or was skipped is
// skipped. When ctx is done no new task starts; running ones finish with
// opCtx, so an operation is never abandoned half-way. It returns each
// task's error (nil on success).
func runDAG(ctx, opCtx context.Context, tasks []*task, parallelism int) map[string]error {
	byID := make(map[string]*task, len(tasks))
	for _, t := range tasks {
		byID[t.id] = t
	}
	waiting := make(map[string]int, len(tasks))
	dependents := map[string][]string{}
	for _, t := range tasks {
		for _, d := range t.deps {
			if _, ok := byID[d]; ok {
				waiting[t.id]++
				dependents[d] = append(dependents[d], t.id)
			}
		}
	}
	results := make(map[string]error, len(tasks))
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		sem  chan struct{}
		done = make(chan string, len(tasks))
	)
	if parallelism > 0 {
		sem = make(chan struct{}, parallelism)
	}
	failed := map[string]bool{}
	start := func(t *task) {
		// Taking the slot here, not in the goroutine, starts ready tasks
		// in order; done is buffered, so running tasks never block on it.
		if sem != nil {
			sem <- struct{}{}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var once sync.Once
			release := func() {
				if sem != nil {
					once.Do(func() { <-sem })
				}
			}
			defer release()
			var err error
			if ctx.Err() != nil {
				err = ctx.Err()
			} else {
				err = t.run(context.WithValue(opCtx, slotKey{}, release))
			}
			mu.Lock()
			results[t.id] = err
			mu.Unlock()
			done <- t.id
		}()
	}
	ready := func() []*task {
		var out []*task
		for _, t := range tasks {
			if waiting[t.id] == 0 {
				out = append(out, t)
			}
		}
		return out
	}
	pending := len(tasks)
	for _, t := range ready() {
		start(t)
	}
	for pending > 0 {
		id := <-done
		pending--
		mu.Lock()
		err := results[id]
		mu.Unlock()
		if err != nil {
			failed[id] = true
		}
		// Release dependents; skip those whose dependency failed.
		var queue []string
		queue = append(queue, dependents[id]...)
		for len(queue) > 0 {
			d := queue[0]
			queue = queue[1:]
			waiting[d]--
			if failed[id] {
				failed[d] = true
			}
			if waiting[d] == 0 {
				if failed[d] {
					mu.Lock()
					results[d] = errSkipped
					mu.Unlock()
					pending--
					// Its dependents are skipped too.
					for _, dd := range dependents[d] {
						failed[dd] = true
					}
					queue = append(queue, dependents[d]...)
				} else {
					start(byID[d])
				}
			}
		}
	}
	wg.Wait()
	return results
}
