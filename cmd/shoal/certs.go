package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/shoal-db/shoal/agent/config"
)

// caValidity is how long a CA made by `shoal certs` lasts; member certificates never outlive it.
const caValidity = 10 * 365 * 24 * time.Hour

// memberSpec is one member's certificate request: its name and the addresses and names it is
// reached at (MEMBER=HOST,HOST...).
type memberSpec struct {
	name  string
	ips   []netip.Addr
	hosts []string // DNS names
}

// String formats m as parseMemberSpec reads it.
func (m memberSpec) String() string {
	var all []string
	for _, ip := range m.ips {
		all = append(all, ip.String())
	}
	all = append(all, m.hosts...)
	if len(all) == 0 {
		return m.name
	}
	return m.name + "=" + strings.Join(all, ",")
}

// parseMemberSpec reads MEMBER or MEMBER=HOST[,HOST...], where MEMBER is the member's node.id and
// each HOST an IP address or a DNS name. Names are lower-cased and repeats dropped.
func parseMemberSpec(s string) (memberSpec, error) {
	name, hosts, hasHosts := strings.Cut(s, "=")
	m := memberSpec{name: name}
	if !config.IsDNSLabel(name) {
		return m, fmt.Errorf("member %q: want a node.id (lower-case letters, digits, '-') before '='", name)
	}
	if !hasHosts {
		return m, nil
	}
	for _, h := range strings.Split(hosts, ",") {
		h = strings.ToLower(strings.TrimSpace(h))
		if ip, err := netip.ParseAddr(h); err == nil {
			if ip.Zone() != "" {
				return m, fmt.Errorf("member %s: %q: an address with a zone cannot be in a certificate", name, h)
			}
			if ip = ip.Unmap(); !slices.Contains(m.ips, ip) {
				m.ips = append(m.ips, ip)
			}
			continue
		}
		if !isDNSName(h) {
			return m, fmt.Errorf("member %s: %q is neither an IP address nor a DNS name", name, h)
		}
		if !slices.Contains(m.hosts, h) {
			m.hosts = append(m.hosts, h)
		}
	}
	return m, nil
}

// isDNSName reports whether s is a host name: dot-separated DNS labels, at most 253 bytes, and
// not all digits and dots (which would read as a mistyped IP address).
func isDNSName(s string) bool {
	if s == "" || len(s) > 253 || strings.Trim(s, "0123456789.") == "" {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if !config.IsDNSLabel(label) {
			return false
		}
	}
	return true
}

// runCerts is `shoal certs`: a cluster CA and a certificate per member for Raft and the admin
// API, so a cluster on VMs (and the demo and tests) gets mutual TLS in one command.
func runCerts(_ context.Context, args []string, stdout io.Writer) error {
	flags := newFlagSet("certs")
	dir := flags.String("dir", ".", "where ca.crt, ca.key and MEMBER.crt, MEMBER.key are written; an existing ca.crt and ca.key there issue the new members")
	days := flags.Int("days", 3*365, "days a member certificate is valid")
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), "Usage: shoal certs [--dir DIR] [--days N] MEMBER[=HOST,...] ...\n\n"+
			"Writes a cluster CA (unless DIR has one) and, per member, an ECDSA P-256 certificate for\n"+
			"server and client auth naming MEMBER and each HOST (IP address or DNS name). Copy ca.crt,\n"+
			"MEMBER.crt and MEMBER.key to each member (raft.tls.*); keep ca.key off the members.\n\n")
		flags.PrintDefaults()
	}
	pos, err := parseInterspersed(flags, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return fmt.Errorf("%w: certs needs at least one MEMBER[=HOST,...]", errUsage)
	}
	if *days < 1 {
		return fmt.Errorf("%w: --days %d: want at least 1", errUsage, *days)
	}
	var members []memberSpec
	for _, p := range pos {
		m, err := parseMemberSpec(p)
		if err != nil {
			return fmt.Errorf("%w: %w", errUsage, err)
		}
		if slices.ContainsFunc(members, func(o memberSpec) bool { return o.name == m.name }) {
			return fmt.Errorf("%w: member %s given twice", errUsage, m.name)
		}
		members = append(members, m)
	}
	// Nothing is written unless every member's files are new: a rerun never replaces a key in use.
	for _, m := range members {
		for _, f := range []string{m.name + ".crt", m.name + ".key"} {
			if _, err := os.Stat(filepath.Join(*dir, f)); !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s already exists (or cannot be checked: %v); remove it to issue %s again", filepath.Join(*dir, f), err, m.name)
			}
		}
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", *dir, err)
	}
	ca, caKey, made, err := loadOrMakeCA(*dir, time.Now())
	if err != nil {
		return err
	}
	if made {
		fmt.Fprintf(stdout, "wrote %s and %s (the cluster CA)\n", filepath.Join(*dir, "ca.crt"), filepath.Join(*dir, "ca.key"))
	}
	for _, m := range members {
		if err := issueMember(*dir, m, ca, caKey, time.Now(), time.Duration(*days)*24*time.Hour); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s and %s for %s\n", filepath.Join(*dir, m.name+".crt"), filepath.Join(*dir, m.name+".key"), m)
	}
	return nil
}

// loadOrMakeCA reads dir's ca.crt and ca.key, or writes new ones when neither exists.
func loadOrMakeCA(dir string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, bool, error) {
	certPath, keyPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	_, certErr := os.Stat(certPath)
	_, keyErr := os.Stat(keyPath)
	if certErr == nil && keyErr == nil {
		pair, err := tls.LoadX509KeyPair(certPath, keyPath)
		if err != nil {
			return nil, nil, false, fmt.Errorf("load the cluster CA: %w", err)
		}
		key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
		if !ok || !pair.Leaf.IsCA {
			return nil, nil, false, fmt.Errorf("%s is not an ECDSA certificate authority made by shoal certs", certPath)
		}
		return pair.Leaf, key, false, nil
	}
	if !errors.Is(certErr, fs.ErrNotExist) || !errors.Is(keyErr, fs.ErrNotExist) {
		return nil, nil, false, fmt.Errorf("%s and %s must both exist or both be absent", certPath, keyPath)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, false, fmt.Errorf("generate the CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "shoal cluster CA"},
		NotBefore:             now.Add(-time.Hour), // members' clocks may be a little behind
		NotAfter:              now.Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	ca, err := writePair(certPath, keyPath, tmpl, nil, key, nil)
	if err != nil {
		return nil, nil, false, fmt.Errorf("write the cluster CA: %w", err)
	}
	return ca, key, true, nil
}

// issueMember writes m's certificate, signed by ca, and its key.
func issueMember(dir string, m memberSpec, ca *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time, valid time.Duration) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate %s's key: %w", m.name, err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: m.name},
		DNSNames:    append([]string{m.name}, m.hosts...),
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(valid),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	for _, ip := range m.ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
	}
	if _, err := writePair(filepath.Join(dir, m.name+".crt"), filepath.Join(dir, m.name+".key"), tmpl, ca, key, caKey); err != nil {
		return fmt.Errorf("issue %s: %w", m.name, err)
	}
	return nil
}

// writePair signs tmpl (self-signed when parent is nil) and writes the certificate and, readable
// by the owner only, the key. Neither file may exist yet.
func writePair(certPath, keyPath string, tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	if err := writeNew(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	if err := writeNew(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// writeNew writes a file that must not exist yet.
func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
