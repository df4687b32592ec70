package awsfake

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// SigV4 verification, as AWS does it: the server knows each access
// key's secret (Server.Credentials), rebuilds the request from the
// headers the Authorization header says were signed, signs it again
// with aws-sdk-go-v2's signer for the same time, region and service,
// and compares the signatures. So a wrong secret, a changed header,
// path or body fails as it would on AWS.

// sigv4Auth is a parsed Authorization header.
type sigv4Auth struct {
	accessKey, date, region, service string
	signedHeaders                    []string
	signature                        string
}

func parseSigV4(h string) (*sigv4Auth, bool) {
	rest, ok := strings.CutPrefix(h, "AWS4-HMAC-SHA256 ")
	if !ok {
		return nil, false
	}
	a := &sigv4Auth{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, false
		}
		switch k {
		case "Credential":
			p := strings.Split(v, "/")
			if len(p) != 5 || p[4] != "aws4_request" {
				return nil, false
			}
			a.accessKey, a.date, a.region, a.service = p[0], p[1], p[2], p[3]
		case "SignedHeaders":
			a.signedHeaders = strings.Split(v, ";")
		case "Signature":
			a.signature = v
		}
	}
	if a.accessKey == "" || len(a.signedHeaders) == 0 || a.signature == "" {
		return nil, false
	}
	return a, true
}

// sigv4Failure is why a request's signature does not verify: an HTTP
// status, the error code the service (ec2 or s3) uses, and a message.
type sigv4Failure struct {
	status        int
	code, message string
}

// verifySigV4 checks r (whose body was read into body) against the
// server's credentials; nil when it verifies or the server knows no
// credentials.
func (s *Server) verifySigV4(r *http.Request, body []byte, service string) *sigv4Failure {
	s.mu.Lock()
	creds := s.Credentials
	s.mu.Unlock()
	if len(creds) == 0 {
		return nil
	}
	denied := func(code, msg string) *sigv4Failure {
		if service == "ec2" {
			return &sigv4Failure{http.StatusUnauthorized, "AuthFailure", msg}
		}
		return &sigv4Failure{http.StatusForbidden, code, msg}
	}
	a, ok := parseSigV4(r.Header.Get("Authorization"))
	if !ok || a.service != service {
		return &sigv4Failure{http.StatusBadRequest, "AuthorizationHeaderMalformed", "The authorization header is malformed"}
	}
	if s.Region != "" && a.region != s.Region {
		return &sigv4Failure{http.StatusBadRequest, "AuthorizationHeaderMalformed", "The authorization header is malformed; the region '" + a.region + "' is wrong; expecting '" + s.Region + "'"}
	}
	secret, known := creds[a.accessKey]
	if !known {
		return denied("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil || !strings.HasPrefix(r.Header.Get("X-Amz-Date"), a.date) {
		return denied("AccessDenied", "X-Amz-Date is missing or does not match the credential scope")
	}
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" {
		if h != "UNSIGNED-PAYLOAD" && h != payload {
			return &sigv4Failure{http.StatusBadRequest, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed."}
		}
		payload = h
	}
	// The request as the client signed it: method, URI, host, length
	// and the signed headers only.
	req, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
	if err != nil {
		return denied("AccessDenied", err.Error())
	}
	req.Host = r.Host
	if r.ContentLength > 0 {
		req.ContentLength = r.ContentLength
	}
	for _, h := range a.signedHeaders {
		if h == "host" || h == "content-length" {
			continue
		}
		req.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
	}
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = service == "s3" })
	c := aws.Credentials{AccessKeyID: a.accessKey, SecretAccessKey: secret, SessionToken: r.Header.Get("X-Amz-Security-Token")}
	if err := signer.SignHTTP(context.Background(), c, req, payload, service, a.region, at); err != nil {
		return denied("AccessDenied", err.Error())
	}
	want, _ := parseSigV4(req.Header.Get("Authorization"))
	if want == nil || !hmac.Equal([]byte(want.signature), []byte(a.signature)) {
		return denied("SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method.")
	}
	return nil
}
