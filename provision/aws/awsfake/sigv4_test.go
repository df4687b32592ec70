package awsfake_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/hvctl/hvctl/provision/aws/awsfake"
)

// TestSigV4: with Credentials the fake recomputes every request's SigV4
// signature, as AWS does: the right secret passes for EC2 and S3; a
// wrong secret, an unknown key or a body changed after signing fail with
// the codes AWS uses. Without Credentials any key passes.
func TestSigV4(t *testing.T) {
	const key, secret = "AKIDSIGV4TEST0001", "the-right-secret"
	tests := []struct {
		name, key, secret string
		known             bool // the fake has Credentials
		ec2Err, s3Err     string
	}{
		{"right secret", key, secret, true, "", ""},
		{"wrong secret", key, "a-wrong-secret", true, "AuthFailure", "SignatureDoesNotMatch"},
		{"unknown key", "AKIDSOMEONEELSE0001", secret, true, "AuthFailure", "InvalidAccessKeyId"},
		{"no credentials configured", key, "anything", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := awsfake.New()
			defer srv.Close()
			if tt.known {
				srv.Credentials = map[string]string{key: secret}
			}
			srv.CreateBucket("b")
			cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(tt.key, tt.secret, ""), RetryMaxAttempts: 1}
			e := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(srv.URL) })
			_, err := e.DescribeVpcs(context.Background(), &ec2.DescribeVpcsInput{})
			check(t, "ec2 DescribeVpcs", err, tt.ec2Err)
			c := s3.NewFromConfig(cfg, func(o *s3.Options) {
				o.BaseEndpoint, o.UsePathStyle = aws.String(srv.URL), true
				o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			})
			_, err = c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k/x.state"), Body: strings.NewReader("data")})
			check(t, "s3 PutObject", err, tt.s3Err)
			if got := srv.Object("b", "k/x.state"); (tt.s3Err == "") != (got != nil) {
				t.Errorf("object after the put: %q (want it stored only when the put verified)", got)
			}
		})
	}
}

func check(t *testing.T, what string, err error, want string) {
	t.Helper()
	if want == "" && err != nil {
		t.Errorf("%s: %v", what, err)
	}
	if want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
		t.Errorf("%s: %v, want %s", what, err, want)
	}
}

// TestSigV4ChangedBody: a request signed with the right secret whose
// body changed on the way fails: EC2 with AuthFailure (the payload is
// in the signature), S3 with XAmzContentSHA256Mismatch.
func TestSigV4ChangedBody(t *testing.T) {
	srv := awsfake.New()
	defer srv.Close()
	srv.Credentials = map[string]string{"AKIDRAW": "raw-secret"}
	srv.CreateBucket("b")
	creds := aws.Credentials{AccessKeyID: "AKIDRAW", SecretAccessKey: "raw-secret"}
	tests := []struct {
		name, method, path, service, signed, sent string
		s3Hash                                    bool
		status                                    int
		code                                      string
	}{
		{"ec2 as signed", "POST", "/", "ec2", "Action=DescribeVpcs&Version=2016-11-15", "Action=DescribeVpcs&Version=2016-11-15", false, 200, ""},
		{"ec2 changed", "POST", "/", "ec2", "Action=DescribeVpcs&Version=2016-11-15", "Action=DescribeVpcz&Version=2016-11-15", false, 401, "AuthFailure"},
		{"s3 as signed", "PUT", "/b/obj", "s3", "abc", "abc", true, 200, ""},
		{"s3 changed", "PUT", "/b/obj", "s3", "abc", "abd", true, 400, "XAmzContentSHA256Mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.signed))
			req.ContentLength = int64(len(tt.signed))
			if tt.service == "ec2" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			sum := sha256.Sum256([]byte(tt.signed))
			hash := hex.EncodeToString(sum[:])
			if tt.s3Hash {
				req.Header.Set("X-Amz-Content-Sha256", hash)
			}
			if err := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = tt.service == "s3" }).
				SignHTTP(context.Background(), creds, req, hash, tt.service, "us-east-1", time.Now()); err != nil {
				t.Fatal(err)
			}
			req.Body = io.NopCloser(bytes.NewReader([]byte(tt.sent)))
			req.ContentLength = int64(len(tt.sent))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || !strings.Contains(string(b), tt.code) {
				t.Errorf("status %d, want %d with %q: %s", resp.StatusCode, tt.status, tt.code, b)
			}
		})
	}
}
