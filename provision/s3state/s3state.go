// Package s3state is hvctl's s3 state backend, through aws-sdk-go-v2's
// S3 client, locking with conditional writes as Terraform 1.10 does (no
// DynamoDB):
//
//   - the state object KEY/WORKSPACE.state holds the snapshot; every
//     write is conditional on the ETag this backend last read or wrote
//     (If-Match; If-None-Match: * for the first), so two writers never
//     overwrite each other: the loser gets 412 and a stale-serial error;
//   - S3 cannot append, so the backend keeps no journal (ErrNoAppend):
//     the engine writes a snapshot for every group-commit batch;
//   - the lock object KEY/WORKSPACE.state.lock is created with
//     If-None-Match: *, holds the holder's info and a lease (an expiry
//     lock_lease ahead, default 1m), renewed by the holder every third
//     of the lease (If-Match on its ETag), and is deleted on unlock. A
//     killed holder's lease runs out: the next locker replaces its lock
//     (If-Match on the dead one's ETag, so of two only one does). A
//     lock without a lease (from force-unlock's era) stays until
//     force-unlock removes it. Clocks of lockers must agree to well
//     within a third of the lease.
package s3state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/hvctl/hvctl/provision"
)

// Backend is a state in an S3 bucket.
type Backend struct {
	client  *s3.Client
	bucket  string
	key     string // the state object
	lockKey string
	where   string

	lease time.Duration // of a lock

	mu   sync.Mutex
	etag string // of the state object as last read or written; "" = absent
}

// DefaultLease is a lock's lease without the lock_lease setting.
const DefaultLease = time.Minute

// lockBody is the lock object: the holder and its lease.
type lockBody struct {
	provision.LockInfo
	// Expires is when the lock is free unless its holder renews it.
	Expires time.Time `json:"expires,omitzero"`
}

// New returns the s3 backend for cluster's state in workspace; settings
// are bucket, key (default hvctl/CLUSTER), region, endpoint,
// use_path_style and profile. Credentials come from the SDK's usual
// chain (environment, shared files, profile).
func New(ctx context.Context, settings map[string]string, cluster, workspace string) (*Backend, error) {
	var opts []func(*config.LoadOptions) error
	region := settings["region"]
	if region == "" {
		region = "us-east-1"
	}
	opts = append(opts, config.WithRegion(region))
	if p := settings["profile"]; p != "" {
		opts = append(opts, config.WithSharedConfigProfile(p))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3 state backend: %w", err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if ep := settings["endpoint"]; ep != "" {
			o.BaseEndpoint = aws.String(ep)
		}
		o.UsePathStyle = settings["use_path_style"] == "true"
		// Plain bodies: S3-compatible stores (and the fake) need not
		// speak aws-chunked trailers.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	base := settings["key"]
	if base == "" {
		base = "hvctl/" + cluster
	}
	key := base + "/" + workspace + ".state"
	lease := DefaultLease
	if v := settings["lock_lease"]; v != "" {
		if lease, err = time.ParseDuration(v); err != nil || lease < time.Second {
			return nil, fmt.Errorf("s3 state backend: lock_lease %q must be a duration of at least 1s", v)
		}
	}
	return &Backend{client: client, bucket: settings["bucket"], key: key, lockKey: key + ".lock", lease: lease,
		where: fmt.Sprintf("s3://%s/%s", settings["bucket"], key)}, nil
}

// Describe says where the state is.
func (b *Backend) Describe() string { return b.where }

func status(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func notFound(err error) bool {
	var ae smithy.APIError
	return status(err) == http.StatusNotFound || errors.As(err, &ae) && ae.ErrorCode() == "NoSuchKey"
}

// get reads an object: (nil, "", nil) when it does not exist.
func (b *Backend) get(ctx context.Context, key string) ([]byte, string, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: &key})
	if notFound(err) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	return data, aws.ToString(out.ETag), err
}

// Load reads the state object. head is 0: the ETag, not the serial,
// guards writes here.
func (b *Backend) Load(ctx context.Context) (snap, journal []byte, head uint64, err error) {
	data, etag, err := b.get(ctx, b.key)
	if err != nil {
		return nil, nil, 0, err
	}
	b.mu.Lock()
	b.etag = etag
	b.mu.Unlock()
	return data, nil, 0, nil
}

// WriteSnapshot puts the state object if it is still what this backend
// last saw.
func (b *Backend) WriteSnapshot(ctx context.Context, snap []byte, serial, prev uint64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	in := &s3.PutObjectInput{Bucket: &b.bucket, Key: &b.key, Body: bytes.NewReader(snap), ContentLength: aws.Int64(int64(len(snap)))}
	if b.etag == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(b.etag)
	}
	out, err := b.client.PutObject(ctx, in)
	if status(err) == http.StatusPreconditionFailed {
		return fmt.Errorf("%w (S3 412 PreconditionFailed: the object changed since it was read)", &provision.StaleError{Where: b.where, Have: prev})
	}
	if err != nil {
		return err
	}
	b.etag = aws.ToString(out.ETag)
	return nil
}

// AppendJournal: S3 cannot append; the Store writes a snapshot instead.
func (b *Backend) AppendJournal(context.Context, []byte, uint64, uint64) error {
	return provision.ErrNoAppend
}

// Lock creates the lock object, retrying until timeout; a lock whose
// lease ran out (its holder died) is replaced.
func (b *Backend) Lock(ctx context.Context, info provision.LockInfo, timeout time.Duration) (func() error, error) {
	deadline := time.Now().Add(timeout)
	delay := 100 * time.Millisecond
	for {
		body := lockBody{LockInfo: info, Expires: time.Now().Add(b.lease)}
		etag, err := b.putLock(ctx, body, "")
		if err == nil {
			return b.hold(body, etag), nil
		}
		if st := status(err); st != http.StatusPreconditionFailed && st != http.StatusConflict {
			return nil, &provision.LockError{Err: err}
		}
		// Held: by a holder whose lease ran out?
		if data, old, err := b.get(ctx, b.lockKey); err == nil && data != nil {
			var cur lockBody
			if json.Unmarshal(data, &cur) == nil && !cur.Expires.IsZero() && time.Now().After(cur.Expires) {
				body.Expires = time.Now().Add(b.lease)
				if etag, err := b.putLock(ctx, body, old); err == nil {
					return b.hold(body, etag), nil
				}
				// Another locker replaced it first: wait like for any holder.
			}
		}
		if !time.Now().Before(deadline) {
			h, _ := b.LockHolder(ctx)
			return nil, &provision.LockError{Holder: h, Err: provision.ErrLocked}
		}
		select {
		case <-ctx.Done():
			return nil, &provision.LockError{Err: ctx.Err()}
		case <-time.After(min(delay, time.Until(deadline)+time.Millisecond)):
		}
		delay = min(2*delay, time.Second)
	}
}

// putLock writes the lock object: created (ifMatch "") or replacing the
// object with ETag ifMatch. It returns the new ETag.
func (b *Backend) putLock(ctx context.Context, body lockBody, ifMatch string) (string, error) {
	data, _ := json.Marshal(body)
	in := &s3.PutObjectInput{Bucket: &b.bucket, Key: &b.lockKey, Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data)))}
	if ifMatch == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(ifMatch)
	}
	out, err := b.client.PutObject(ctx, in)
	if err != nil {
		return "", err
	}
	return aws.ToString(out.ETag), nil
}

// hold renews the lease of the lock with ETag etag every third of the
// lease until the returned unlock deletes it. A renewal refused with
// 412 means another locker replaced the lock (this holder was thought
// dead): renewing stops, and unlock leaves the other's lock alone.
func (b *Backend) hold(body lockBody, etag string) func() error {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(b.lease / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			body.Expires = time.Now().Add(b.lease)
			ctx, cancel := context.WithTimeout(context.Background(), b.lease/3)
			e, err := b.putLock(ctx, body, etag)
			cancel()
			switch {
			case err == nil:
				etag = e
			case status(err) == http.StatusPreconditionFailed:
				etag = ""
				return
			}
		}
	}()
	var once sync.Once
	var uerr error
	return func() error {
		once.Do(func() {
			close(stop)
			<-done
			if etag == "" {
				uerr = fmt.Errorf("the lock of %s was taken over by another locker after its lease ran out", b.where)
				return
			}
			_, uerr = b.client.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &b.bucket, Key: &b.lockKey, IfMatch: aws.String(etag)})
		})
		return uerr
	}
}

// LockHolder reads the lock object's info.
func (b *Backend) LockHolder(ctx context.Context) (*provision.LockInfo, error) {
	data, _, err := b.get(ctx, b.lockKey)
	if err != nil || data == nil {
		return nil, err
	}
	var lb lockBody
	if json.Unmarshal(data, &lb) != nil {
		return &provision.LockInfo{ID: "(unknown)", Path: b.where}, nil
	}
	return &lb.LockInfo, nil
}

// ForceUnlock deletes the lock object when its ID is id. S3 cannot
// tell whether the holder lives: make sure it does not.
func (b *Backend) ForceUnlock(ctx context.Context, id string) error {
	data, etag, err := b.get(ctx, b.lockKey)
	if err != nil {
		return err
	}
	if data == nil {
		return fmt.Errorf("no lock with ID %q: the state is not locked", id)
	}
	var li provision.LockInfo
	if json.Unmarshal(data, &li) == nil && li.ID != id {
		return fmt.Errorf("lock ID %q does not match the current lock %q", id, li.ID)
	}
	_, err = b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.bucket, Key: &b.lockKey, IfMatch: aws.String(etag)})
	return err
}

var _ provision.Backend = (*Backend)(nil)
