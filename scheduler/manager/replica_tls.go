package manager

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// ReplicaName is the name in a control-log replica's certificate. Only
// replicas (manager nodes and the witness) are issued one; raft traffic
// is mutual TLS that requires it on both ends, so a worker, which is on
// the overlay too, cannot speak raft.
const ReplicaName = "replica.hvctl.internal"

// ReplicaPort is the TCP port raft listens on (reached over the
// overlay).
const ReplicaPort = 51823

// IssueReplica signs a certificate for a control-log replica, good for
// both ends of a connection.
func (ca *CA) IssueReplica() (certPEM, keyPEM []byte, err error) {
	return ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: ReplicaName},
		DNSNames:    []string{ReplicaName},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
}

// ReplicaTLS is the mutual-TLS configuration of raft connections: the
// cluster CA only, and a replica certificate on both ends.
func ReplicaTLS(caPEM, certPEM, keyPEM []byte) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("the cluster CA certificate is malformed")
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("replica certificate: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ServerName:   ReplicaName,
		MinVersion:   tls.VersionTLS13,
		// The chain is checked by crypto/tls on both ends; the name is
		// checked here too on the accepting end, so that another
		// certificate of the cluster CA (a manager's server
		// certificate) does not pass for a replica's.
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no replica certificate")
			}
			return cs.PeerCertificates[0].VerifyHostname(ReplicaName)
		},
	}, nil
}

// tlsStream is raft's stream layer over mutual TLS. Raft addresses are
// member IDs; resolve maps one to where it listens now (its overlay
// address), so a replica that comes back at another address is found.
type tlsStream struct {
	net.Listener
	self    string
	tc      *tls.Config
	resolve func(id string) (string, error)
}

type idAddr string

func (a idAddr) Network() string { return "hvctl-replica" }
func (a idAddr) String() string  { return string(a) }

func (s *tlsStream) Addr() net.Addr { return idAddr(s.self) }

func (s *tlsStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	hostport, err := s.resolve(string(address))
	if err != nil {
		return nil, fmt.Errorf("replica %s: %w", address, err)
	}
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", hostport, s.tc)
}

// NewReplicaTransport listens for raft on listen (":51823") with mutual
// TLS; self is this replica's member ID, resolve finds the others.
func NewReplicaTransport(listen, self string, tc *tls.Config, resolve func(id string) (string, error), logf func(string, ...any)) (raft.Transport, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("control log: listen on %s: %w", listen, err)
	}
	s := &tlsStream{Listener: tls.NewListener(ln, tc), self: self, tc: tc, resolve: resolve}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: s, MaxPool: 3, Timeout: 10 * time.Second,
		Logger: hclogFor(logf),
	}), nil
}
