// Package peertls is how members verify each other's certificates, for Raft and for the admin
// API's agent-to-agent calls alike: a peer is anyone whose certificate chains to the cluster CA,
// carries the usage its side of the connection needs and, when a cluster-wide name is set,
// names it. Members are dialled by IP:port, and addresses move (a VM gets a new IP, a member is
// replaced), so the dialled address is not checked against the certificate.
package peertls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// Verify checks that certs (the peer's chain, leaf first) chain to roots, that the leaf is meant
// for usage and, when name is set, that it carries name as a DNS SAN.
func Verify(certs []*x509.Certificate, roots *x509.CertPool, name string, usage x509.ExtKeyUsage) error {
	if len(certs) == 0 {
		return errors.New("peer sent no certificate")
	}
	intermediates := x509.NewCertPool()
	for _, c := range certs[1:] {
		intermediates.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		DNSName:       name,
		KeyUsages:     []x509.ExtKeyUsage{usage},
	})
	if err != nil {
		return fmt.Errorf("peer certificate %q refused: %w", certs[0].Subject.CommonName, err)
	}
	return nil
}

// Client returns base set up to dial a member: the member's certificate must chain to
// base.RootCAs and carry server auth (and base.ServerName, when set), whatever address was
// dialled. base keeps its own certificates, if any, for the member to check.
func Client(base *tls.Config) *tls.Config {
	c := base.Clone()
	// Go's own check would compare the certificate with the dialled address; Verify checks the
	// chain and the cluster name instead.
	c.InsecureSkipVerify = true
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		return Verify(cs.PeerCertificates, base.RootCAs, base.ServerName, x509.ExtKeyUsageServerAuth)
	}
	c.MinVersion = max(c.MinVersion, tls.VersionTLS13)
	return c
}

// Server returns base set up to accept members only: a client certificate is required and must
// chain to base.ClientCAs (base.RootCAs when unset), carry client auth and, when set, name
// base.ServerName.
func Server(base *tls.Config) *tls.Config {
	c := base.Clone()
	c.ClientAuth = tls.RequireAnyClientCert
	roots := ClientCAs(base)
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		return Verify(cs.PeerCertificates, roots, base.ServerName, x509.ExtKeyUsageClientAuth)
	}
	c.MinVersion = max(c.MinVersion, tls.VersionTLS13)
	return c
}

// ClientCAs is the pool that verifies members connecting to base's side.
func ClientCAs(base *tls.Config) *x509.CertPool {
	if base.ClientCAs != nil {
		return base.ClientCAs
	}
	return base.RootCAs
}
