package manager

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hvctl/hvctl/scheduler"
)

// Request body limits. Every body a server of this package reads is
// bounded; a body over its limit gets 413 and changes nothing.
const (
	// MaxRequestBytes bounds a JSON request (join, heartbeat, work poll,
	// a site's job batch is MaxSiteBatchBytes).
	MaxRequestBytes = 1 << 20
	// MaxReportBytes bounds a job report: it carries up to
	// scheduler.MaxOutput of output, which JSON escaping can grow.
	MaxReportBytes = 8*scheduler.MaxOutput + 64<<10
	// MaxSiteBatchBytes bounds one batch of jobs the global manager
	// hands a site; SiteLink.Enqueue splits batches to fit.
	MaxSiteBatchBytes = 16 << 20
	// MaxResultBytes is a job's quota on the global tier: all its
	// result files together.
	MaxResultBytes = 1 << 30
	// MaxDatasetBytes bounds one dataset upload (cluster token).
	MaxDatasetBytes = 16 << 30
)

// Timeouts of the manager's servers. Long polls wait up to a minute, so
// writes may take that long; a request's headers and body must arrive
// within ReadTimeout, so a client that sends headers and one byte is
// cut off. Uploads and downloads (datasets, results) extend their own
// deadlines while data moves (progressReader, progressWriter).
type Timeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
	// Progress is how long an upload or download may stall.
	Progress time.Duration
}

// DefaultTimeouts are the timeouts of every server hvctl runs.
var DefaultTimeouts = Timeouts{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: 90 * time.Second,
	Idle: 2 * time.Minute, Progress: 30 * time.Second}

// NewServer returns an http.Server for h with timeouts t (zero fields:
// DefaultTimeouts).
func NewServer(h http.Handler, t Timeouts) *http.Server {
	d := DefaultTimeouts
	if t.ReadHeader == 0 {
		t.ReadHeader = d.ReadHeader
	}
	if t.Read == 0 {
		t.Read = d.Read
	}
	if t.Write == 0 {
		t.Write = d.Write
	}
	if t.Idle == 0 {
		t.Idle = d.Idle
	}
	return &http.Server{Handler: h, ReadHeaderTimeout: t.ReadHeader, ReadTimeout: t.Read, WriteTimeout: t.Write, IdleTimeout: t.Idle}
}

// errTooLarge is a request body over its limit.
type errTooLarge struct{ limit int64 }

func (e *errTooLarge) Error() string {
	return fmt.Sprintf("the request body is over this endpoint's limit of %s", byteSize(e.limit))
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// tooLarge returns the errTooLarge in err, if any.
func tooLarge(err error) (*errTooLarge, bool) {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return &errTooLarge{limit: mb.Limit}, true
	}
	var tl *errTooLarge
	if errors.As(err, &tl) {
		return tl, true
	}
	return nil, false
}

// limited wraps r's body in an http.MaxBytesReader of n bytes.
func limited(w http.ResponseWriter, r *http.Request, n int64) io.Reader {
	return http.MaxBytesReader(w, r.Body, n)
}

// limitBodies bounds every request body to n bytes, except for the
// routes in bigger (which set their own limits).
func limitBodies(h http.Handler, n int64, bigger func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > n && !bigger(r) {
			writeJSON(w, http.StatusRequestEntityTooLarge, apiError{Error: (&errTooLarge{limit: n}).Error(), Field: "body"})
			return
		}
		if r.Body != nil && !bigger(r) {
			r.Body = http.MaxBytesReader(w, r.Body, n)
		}
		h.ServeHTTP(w, r)
	})
}

// progressReader extends the connection's read deadline while data
// arrives: an upload may take as long as it needs, but may not stall
// for longer than every.
type progressReader struct {
	r     io.Reader
	rc    *http.ResponseController
	every time.Duration
}

func (p *progressReader) Read(b []byte) (int, error) {
	p.rc.SetReadDeadline(time.Now().Add(p.every))
	return p.r.Read(b)
}

// progressWriter is progressReader for downloads.
type progressWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	every time.Duration
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.rc.SetWriteDeadline(time.Now().Add(p.every))
	return p.ResponseWriter.Write(b)
}

// downloading returns a writer for a download of any size that moves
// the write deadline along while data moves.
func downloading(w http.ResponseWriter) http.ResponseWriter {
	return &progressWriter{ResponseWriter: w, rc: http.NewResponseController(w), every: DefaultTimeouts.Progress}
}

// streaming returns a reader of r's body and a writer that move their
// deadlines along as data moves.
func streaming(w http.ResponseWriter, r *http.Request, limit int64) (io.Reader, http.ResponseWriter) {
	rc := http.NewResponseController(w)
	every := DefaultTimeouts.Progress
	return &progressReader{r: http.MaxBytesReader(w, r.Body, limit), rc: rc, every: every}, &progressWriter{ResponseWriter: w, rc: rc, every: every}
}
