package awsfake

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"
)

// The fake's S3: path-style buckets and objects (CreateBucket,
// PutObject, GetObject, HeadObject, DeleteObject) with S3's conditional
// writes: If-None-Match: * creates only when the key is absent, If-Match
// writes or deletes only when the ETag matches, else 412
// PreconditionFailed. Requests signed for service s3 come here.

type object struct {
	data []byte
	etag string
}

// Object returns the stored bytes of bucket/key, or nil.
func (s *Server) Object(bucket, key string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o := s.buckets[bucket][key]; o != nil {
		return append([]byte(nil), o.data...)
	}
	return nil
}

// PutObject stores data as bucket/key (creating the bucket), as a write
// from outside hvctl would: a test's lock left by a dead holder.
func (s *Server) PutObject(bucket, key string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buckets == nil {
		s.buckets = map[string]map[string]*object{}
	}
	if s.buckets[bucket] == nil {
		s.buckets[bucket] = map[string]*object{}
	}
	sum := md5.Sum(data)
	s.buckets[bucket][key] = &object{data: append([]byte(nil), data...), etag: fmt.Sprintf("%q", hex.EncodeToString(sum[:]))}
}

func isS3(r *http.Request) bool {
	_, cred, ok := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	if !ok {
		return false
	}
	cred, _, _ = strings.Cut(cred, ",")
	parts := strings.Split(cred, "/")
	return len(parts) == 5 && parts[3] == "s3"
}

type s3Error struct {
	XMLName xml.Name `xml:"Error"`
	Code    string
	Message string
}

func s3Fail(w http.ResponseWriter, status int, code, msg string) {
	b, _ := xml.Marshal(s3Error{Code: code, Message: msg})
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	if status != http.StatusNotModified {
		w.Write([]byte(xml.Header))
		w.Write(b)
	}
}

func (s *Server) serveS3(w http.ResponseWriter, r *http.Request, body []byte) {
	path := strings.TrimPrefix(r.URL.Path, "/")
	bucket, key, _ := strings.Cut(path, "/")
	if bucket == "" {
		s3Fail(w, http.StatusBadRequest, "InvalidRequest", "path-style requests only: /BUCKET/KEY")
		return
	}
	if f := s.verifySigV4(r, body, "s3"); f != nil {
		s3Fail(w, f.status, f.code, f.message)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls["s3:"+r.Method]++
	if s.buckets == nil {
		s.buckets = map[string]map[string]*object{}
	}
	if key == "" {
		if r.Method != http.MethodPut {
			s3Fail(w, http.StatusNotImplemented, "NotImplemented", "bucket operations other than CreateBucket")
			return
		}
		if s.buckets[bucket] == nil {
			s.buckets[bucket] = map[string]*object{}
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	objs := s.buckets[bucket]
	if objs == nil {
		s3Fail(w, http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist")
		return
	}
	cur := objs[key]
	// Preconditions, as S3 checks them for PUT, GET and DELETE.
	if m := r.Header.Get("If-Match"); m != "" && (cur == nil || m != cur.etag) {
		if cur == nil && r.Method == http.MethodGet {
			s3Fail(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
			return
		}
		s3Fail(w, http.StatusPreconditionFailed, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
		return
	}
	if m := r.Header.Get("If-None-Match"); m != "" && cur != nil && (m == "*" || m == cur.etag) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			s3Fail(w, http.StatusNotModified, "NotModified", "")
			return
		}
		s3Fail(w, http.StatusPreconditionFailed, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
		return
	}
	switch r.Method {
	case http.MethodPut:
		sum := md5.Sum(body)
		o := &object{data: body, etag: fmt.Sprintf("%q", hex.EncodeToString(sum[:]))}
		objs[key] = o
		w.Header().Set("ETag", o.etag)
		w.WriteHeader(http.StatusOK)
	case http.MethodGet, http.MethodHead:
		if cur == nil {
			s3Fail(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
			return
		}
		w.Header().Set("ETag", cur.etag)
		w.Header().Set("Content-Length", fmt.Sprint(len(cur.data)))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			w.Write(cur.data)
		}
	case http.MethodDelete:
		delete(objs, key)
		w.WriteHeader(http.StatusNoContent)
	default:
		s3Fail(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method)
	}
}

// CreateBucket makes an empty bucket.
func (s *Server) CreateBucket(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buckets == nil {
		s.buckets = map[string]map[string]*object{}
	}
	if s.buckets[name] == nil {
		s.buckets[name] = map[string]*object{}
	}
}
