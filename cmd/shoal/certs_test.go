package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/shoal-db/shoal/agent/config"
	"github.com/shoal-db/shoal/consensus/peertls"
)

func TestParseMemberSpec(t *testing.T) {
	for _, tt := range []struct {
		in, want string // want: the spec formatted back; empty when in is refused
		err      string
	}{
		{in: "db1", want: "db1"},
		{in: "db1=10.0.0.11", want: "db1=10.0.0.11"},
		{in: "db1=10.0.0.11, DB1.Example.com,10.0.0.11,::ffff:10.0.0.12,fd00::1", want: "db1=10.0.0.11,10.0.0.12,fd00::1,db1.example.com"},
		{in: "db1=", err: "neither an IP address nor a DNS name"},
		{in: "db1=10.0.0.11,,x", err: "neither"},
		{in: "db1=10.0.0.256", err: "neither"},
		{in: "db1=fe80::1%eth0", err: "zone"},
		{in: "db1=-bad.example", err: "neither"},
		{in: "DB1=10.0.0.11", err: "want a node.id"},
		{in: "=10.0.0.11", err: "want a node.id"},
		{in: "db_1", err: "want a node.id"},
	} {
		m, err := parseMemberSpec(tt.in)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("parseMemberSpec(%q) = %v, %v; want an error saying %q", tt.in, m, err, tt.err)
		case tt.err == "" && (err != nil || m.String() != tt.want):
			t.Errorf("parseMemberSpec(%q) = %q, %v; want %q", tt.in, m, err, tt.want)
		}
	}
}

// Whatever parseMemberSpec accepts formats back to a spec it reads the same way.
func FuzzParseMemberSpec(f *testing.F) {
	for _, s := range []string{"db1", "db1=10.0.0.11,db1.example", "db1=::1,fd00::1", "a=1.2.3.4.5", "x=,", "db1=0.0.0.0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseMemberSpec(s)
		if err != nil {
			return
		}
		again, err := parseMemberSpec(m.String())
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("%q read as %q, which reads as %q, %v", s, m, again, err)
		}
	})
}

// shoal certs writes a CA and member certificates the agent loads for Raft; the members accept
// each other (both usages, any dialled address) and a later run issues more members from the
// same CA without touching existing files.
func TestCerts(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run(t.Context(), []string{"certs", "--dir", dir, "db1=127.0.0.1,db1.example", "db2=10.0.0.12"}, &out, &out); err != nil {
		t.Fatalf("certs: %v\n%s", err, out.String())
	}
	for name, mode := range map[string]os.FileMode{"ca.crt": 0o644, "ca.key": 0o600, "db1.crt": 0o644, "db1.key": 0o600, "db2.key": 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, %v; want mode %v", name, fi.Mode(), err, mode)
		}
	}
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	member := func(name string) *tls.Config {
		var c config.Config
		c.Raft.CertFile, c.Raft.KeyFile, c.Raft.CAFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"), filepath.Join(dir, "ca.crt")
		tc, err := c.RaftTLS()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return tc
	}
	db1, db2 := member("db1"), member("db2")
	leaf := db1.Certificates[0].Leaf
	if leaf.Subject.CommonName != "db1" || !reflect.DeepEqual(leaf.DNSNames, []string{"db1", "db1.example"}) ||
		len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("db1's certificate names %q, %q, %v", leaf.Subject.CommonName, leaf.DNSNames, leaf.IPAddresses)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if err := peertls.Verify([]*x509.Certificate{db2.Certificates[0].Leaf}, db1.RootCAs, "", usage); err != nil {
			t.Errorf("db1 refuses db2 for usage %v: %v", usage, err)
		}
	}

	if err := run(t.Context(), []string{"certs", "--dir", dir, "db3", "db1"}, &out, &out); err == nil || !strings.Contains(err.Error(), "db1.crt already exists") {
		t.Errorf("reissuing db1: %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "db3.crt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused run wrote db3.crt (%v)", err)
	}
	if err := run(t.Context(), []string{"certs", "--dir", dir, "db3=10.0.0.13"}, &out, &out); err != nil {
		t.Fatalf("adding db3: %v", err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "ca.crt")); !bytes.Equal(again, caPEM) {
		t.Error("adding a member replaced the CA")
	}
	if err := peertls.Verify([]*x509.Certificate{member("db3").Certificates[0].Leaf}, db1.RootCAs, "", x509.ExtKeyUsageClientAuth); err != nil {
		t.Errorf("db1 refuses db3, issued later: %v", err)
	}
}
