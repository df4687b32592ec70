package manager

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/hvctl/hvctl/scheduler"
)

// pageQuery reads GET /v1/jobs's paging parameters: after=ID, limit=N
// (at most MaxJobPage; none = every job, for old clients), array=ID.
func pageQuery(r *http.Request) (scheduler.PageQuery, error) {
	v := r.URL.Query()
	q := scheduler.PageQuery{After: v.Get("after"), Array: v.Get("array")}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxJobPage {
			return q, &BadRequest{Field: "limit", Msg: fmt.Sprintf("a number from 1 to %d", MaxJobPage)}
		}
		q.Limit = n
	}
	return q, nil
}

// summarize is a submit's answer without its jobs.
func summarize(jobs []*scheduler.Job, replayed bool) *SubmitSummary {
	s := &SubmitSummary{Count: len(jobs), BySite: map[string]int{}, Replayed: replayed}
	if len(jobs) > 0 {
		s.First, s.Last, s.ArrayID = jobs[0].ID, jobs[len(jobs)-1].ID, jobs[0].ArrayID
	}
	for _, j := range jobs {
		s.BySite[j.Site]++
	}
	return s
}
