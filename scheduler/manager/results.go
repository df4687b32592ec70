package manager

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// Job results live in the control log, so that every replica has them
// and a new leader serves them after a failover; a replaced hub gets
// them with the log. An upload is written as chunks (ResultChunkBytes
// each, one log entry apiece) and an end entry carrying the file's size
// and SHA-256; every replica's state machine writes the chunks to a
// file of its own under its results directory and, at the end, checks
// the size and hash and renames the file into place. The results index
// (job → file → size and hash) is part of the replicated state, and so
// are the files: a snapshot carries their content after its header, so
// a replica that restores one (a new or lagging replica) gets them too.
// The cost is that results are written through the log: once in the
// log, once as files, and into every snapshot.

// ResultChunkBytes is the most content one log entry carries.
const ResultChunkBytes = 1 << 20

// uploadsDir, under the results directory, holds uploads not yet
// ended (one file per upload, named by its upload ID).
const uploadsDir = ".uploads"

// ResultChunk is a result upload's log entry: Data at Offset of upload
// Upload, or (End) the upload's end with its size and hash.
type ResultChunk struct {
	Job    string `json:"job"`
	Name   string `json:"name"`
	Upload string `json:"upload"`
	Offset int64  `json:"offset,omitempty"`
	Data   []byte `json:"data,omitempty"`
	End    bool   `json:"end,omitempty"`
	Bytes  int64  `json:"bytes,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// ResultFile is one stored result as the index has it.
type ResultFile struct {
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// snapResult and snapUpload are the files a snapshot carries, in this
// order after its header.
type snapResult struct {
	Job  string `json:"job"`
	Name string `json:"name"`
	ResultFile
}

type snapUpload struct {
	ResultChunk       // Job, Name, Upload
	Len         int64 `json:"len"`
}

func checkResultChunk(c *ResultChunk) error {
	if !validDataset(c.Job) || c.Job == uploadsDir || !validDataset(c.Name) {
		return fmt.Errorf("result %q of job %q: not plain names", c.Name, c.Job)
	}
	if h, err := hex.DecodeString(c.Upload); err != nil || len(h) == 0 || len(h) > 32 {
		return fmt.Errorf("result %s/%s: upload ID %q is not hex", c.Job, c.Name, c.Upload)
	}
	if c.Offset < 0 || c.Bytes < 0 || len(c.Data) > ResultChunkBytes {
		return fmt.Errorf("result %s/%s: negative offset or size, or a chunk over %d bytes", c.Job, c.Name, ResultChunkBytes)
	}
	if c.End {
		if h, err := hex.DecodeString(c.SHA256); err != nil || len(h) != 32 || len(c.Data) > 0 || c.Offset != 0 {
			return fmt.Errorf("result %s/%s: an end wants a 64-hex-digit sha256 and no data", c.Job, c.Name)
		}
	} else if c.SHA256 != "" || c.Bytes != 0 {
		return fmt.Errorf("result %s/%s: a chunk carries no size or hash", c.Job, c.Name)
	}
	return nil
}

func newUploadID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (f *controlFSM) uploadPath(upload string) string {
	return filepath.Join(f.resultsDir, uploadsDir, upload)
}

func (f *controlFSM) resultPath(job, name string) string {
	return filepath.Join(f.resultsDir, job, name)
}

// applyResultLocked writes one chunk, or ends an upload.
func (f *controlFSM) applyResultLocked(c *ResultChunk) error {
	if f.resultsDir == "" {
		return errors.New("this replica keeps no results")
	}
	up := f.uploadPath(c.Upload)
	if !c.End {
		if err := os.MkdirAll(filepath.Dir(up), 0o700); err != nil {
			return fmt.Errorf("store result %s/%s: %w", c.Job, c.Name, err)
		}
		fh, err := os.OpenFile(up, os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("store result %s/%s: %w", c.Job, c.Name, err)
		}
		_, err = fh.WriteAt(c.Data, c.Offset)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("store result %s/%s: %w", c.Job, c.Name, err)
		}
		u := f.uploads[c.Upload]
		if u == nil {
			u = &snapUpload{ResultChunk: ResultChunk{Job: c.Job, Name: c.Name, Upload: c.Upload}}
			f.uploads[c.Upload] = u
		}
		u.Len = max(u.Len, c.Offset+int64(len(c.Data)))
		return nil
	}
	delete(f.uploads, c.Upload)
	if c.Bytes == 0 {
		if err := os.MkdirAll(filepath.Dir(up), 0o700); err != nil {
			return fmt.Errorf("store result %s/%s: %w", c.Job, c.Name, err)
		}
		if fh, err := os.OpenFile(up, os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
			fh.Close()
		}
	}
	sum, n, err := hashFile(up)
	if err != nil {
		return fmt.Errorf("store result %s/%s: %w", c.Job, c.Name, err)
	}
	if n != c.Bytes || sum != c.SHA256 {
		os.Remove(up)
		return fmt.Errorf("store result %s/%s: %d bytes with sha256 %s here, the upload had %d bytes with %s", c.Job, c.Name, n, sum, c.Bytes, c.SHA256)
	}
	dst := f.resultPath(c.Job, c.Name)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return fmt.Errorf("store result %s/%s: %w", c.Job, c.Name, err)
	}
	if err := os.Rename(up, dst); err != nil {
		return fmt.Errorf("store result %s/%s: %w", c.Job, c.Name, err)
	}
	// Other uploads of the same file (abandoned by a leader that died,
	// or overtaken) are dropped.
	for id, u := range f.uploads {
		if u.Job == c.Job && u.Name == c.Name {
			delete(f.uploads, id)
			os.Remove(f.uploadPath(id))
		}
	}
	if f.results[c.Job] == nil {
		f.results[c.Job] = map[string]ResultFile{}
	}
	f.results[c.Job][c.Name] = ResultFile{Bytes: c.Bytes, SHA256: c.SHA256}
	return nil
}

func hashFile(path string) (string, int64, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, fh)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Results lists job's stored results by name.
func (f *controlFSM) Results(job string) map[string]ResultFile {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]ResultFile{}
	for k, v := range f.results[job] {
		out[k] = v
	}
	return out
}

// snapshotFilesLocked lists the files a snapshot carries, sorted. The
// uploads under way are opened now (they are renamed when they end); a
// finished result is opened when the snapshot is written, and checked
// against its size and hash then (a file replaced meanwhile fails the
// snapshot, which raft takes again later): holding every result open
// would cost a descriptor per file.
func (f *controlFSM) snapshotFilesLocked() ([]snapResult, []snapUpload, []*os.File, error) {
	var res []snapResult
	for job, files := range f.results {
		for name, rf := range files {
			res = append(res, snapResult{Job: job, Name: name, ResultFile: rf})
		}
	}
	sort.Slice(res, func(i, j int) bool {
		if res[i].Job != res[j].Job {
			return res[i].Job < res[j].Job
		}
		return res[i].Name < res[j].Name
	})
	ups := make([]snapUpload, 0, len(f.uploads))
	for _, u := range f.uploads {
		ups = append(ups, *u)
	}
	sort.Slice(ups, func(i, j int) bool { return ups[i].Upload < ups[j].Upload })
	var fds []*os.File
	for _, u := range ups {
		fd, err := os.Open(f.uploadPath(u.Upload))
		if err != nil {
			for _, fd := range fds {
				fd.Close()
			}
			return nil, nil, nil, fmt.Errorf("control snapshot: upload %s: %w", u.Upload, err)
		}
		fds = append(fds, fd)
	}
	return res, ups, fds, nil
}

// copyResult writes result r's content to w, checking its size and
// hash.
func (f *controlFSM) copyResult(w io.Writer, r snapResult) error {
	fd, err := os.Open(f.resultPath(r.Job, r.Name))
	if err != nil {
		return fmt.Errorf("result %s/%s: %w", r.Job, r.Name, err)
	}
	defer fd.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(fd, r.Bytes+1))
	if err != nil {
		return fmt.Errorf("result %s/%s: %w", r.Job, r.Name, err)
	}
	if n != r.Bytes || hex.EncodeToString(h.Sum(nil)) != r.SHA256 {
		return fmt.Errorf("result %s/%s changed while the snapshot was taken", r.Job, r.Name)
	}
	return nil
}

// restoreFilesLocked reads a snapshot's files from r, in the order its
// header lists them. A result already here with the same size and hash
// is kept (a restart restores its own last snapshot).
func (f *controlFSM) restoreFilesLocked(r io.Reader, res []snapResult, ups []snapUpload) error {
	if (len(res) > 0 || len(ups) > 0) && f.resultsDir == "" {
		return errors.New("control snapshot: carries results, and this replica keeps none")
	}
	f.results = map[string]map[string]ResultFile{}
	f.uploads = map[string]*snapUpload{}
	for _, s := range res {
		dst := f.resultPath(s.Job, s.Name)
		if sum, n, err := hashFile(dst); err == nil && n == s.Bytes && sum == s.SHA256 {
			if _, err := io.CopyN(io.Discard, r, s.Bytes); err != nil {
				return fmt.Errorf("control snapshot: result %s/%s: %w", s.Job, s.Name, err)
			}
		} else {
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				return err
			}
			tmp, err := os.CreateTemp(filepath.Dir(dst), ".restore.*")
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.CopyN(io.MultiWriter(tmp, h), r, s.Bytes)
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err == nil && hex.EncodeToString(h.Sum(nil)) != s.SHA256 {
				err = fmt.Errorf("content does not match its sha256 %s", s.SHA256)
			}
			if err == nil {
				err = os.Rename(tmp.Name(), dst)
			}
			if err != nil {
				os.Remove(tmp.Name())
				return fmt.Errorf("control snapshot: result %s/%s: %w", s.Job, s.Name, err)
			}
		}
		if f.results[s.Job] == nil {
			f.results[s.Job] = map[string]ResultFile{}
		}
		f.results[s.Job][s.Name] = s.ResultFile
	}
	for _, u := range ups {
		p := f.uploadPath(u.Upload)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		fh, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		_, err = io.CopyN(fh, r, u.Len)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("control snapshot: upload %s: %w", u.Upload, err)
		}
		c := u
		f.uploads[u.Upload] = &c
	}
	return nil
}
