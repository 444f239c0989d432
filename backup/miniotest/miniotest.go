// Package miniotest runs a real MinIO server on a loopback port for tests, from the binary
// `make deps` builds into the cache.
package miniotest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/shoal-db/shoal/test/freeport"
)

// Version is the MinIO build test/rig/install.sh installs; keep the two in step.
const Version = "v0.0.0-20260212201848-7aac2a2c5b7c"

// Root credentials of every test server.
const (
	AccessKey = "shoal-test"
	SecretKey = "shoal-test-secret"
)

// KMSKeyID names the one key of the servers' built-in KMS, for SSE-KMS.
const KMSKeyID = "shoal-test-key"

// Server is a running MinIO.
type Server struct {
	// Endpoint is host:port.
	Endpoint string
	scheme   string
	cmd      *exec.Cmd
	exited   chan struct{}
	logPath  string
}

// Binary is the cached MinIO binary's path.
func Binary() string {
	cache := os.Getenv("SHOAL_CACHE")
	if cache == "" {
		cache = "/var/cache/shoal-test"
	}
	return filepath.Join(cache, "bin", "minio-"+Version)
}

// Start runs MinIO on a free port of 127.0.0.1 with a temporary data dir and stops it when the
// test ends. A missing binary fails the test with how to build it.
func Start(t testing.TB) *Server { return start(t, "", "") }

// StartOn runs MinIO as Start does, keeping its objects in dataDir: a benchmark gives the object
// store a file system of its own, as a remote store would not share the servers' disk.
func StartOn(t testing.TB, dataDir string) *Server { return start(t, "", dataDir) }

// StartTLS runs MinIO serving HTTPS with a certificate for 127.0.0.1 from a CA of its own, and
// returns it with the path of that CA's certificate (PEM).
func StartTLS(t testing.TB) (*Server, string) {
	t.Helper()
	certs := t.TempDir()
	caFile := writeCerts(t, certs)
	return start(t, certs, ""), caFile
}

func start(t testing.TB, certsDir, dataDir string) *Server {
	t.Helper()
	bin := Binary()
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("minio is not installed (%v): run `make deps` or, as root, `bash test/rig/install.sh minio`", err)
	}
	dir := t.TempDir()
	if dataDir == "" {
		dataDir = filepath.Join(dir, "data")
	}
	addr, console := freeport.Addr(t), freeport.Addr(t)
	logPath := filepath.Join(dir, "minio.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	args := []string{"server", "--quiet", "--address", addr, "--console-address", console}
	scheme := "http"
	if certsDir != "" {
		args, scheme = append(args, "--certs-dir", certsDir), "https"
	}
	cmd := exec.Command(bin, append(args, dataDir)...)
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+AccessKey, "MINIO_ROOT_PASSWORD="+SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off",
		// A static key serves SSE-S3 and SSE-KMS (key id KMSKeyID) without a KMS.
		"MINIO_KMS_SECRET_KEY="+KMSKeyID+":"+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start minio: %v", err)
	}
	s := &Server{Endpoint: addr, cmd: cmd, exited: make(chan struct{}), logPath: logPath, scheme: scheme}
	go func() { cmd.Wait(); close(s.exited) }()
	t.Cleanup(s.stop)
	if err := s.waitReady(60 * time.Second); err != nil {
		t.Fatalf("minio on %s: %v; log:\n%s", addr, err, s.logTail())
	}
	return s
}

func (s *Server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	// Liveness only: whether the certificate is trusted is the test's business.
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for {
		resp, err := client.Get(s.scheme + "://" + s.Endpoint + "/minio/health/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("exited: %v", s.cmd.ProcessState)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s (last error %v)", timeout, err)
		}
	}
}

func (s *Server) stop() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// Client is a minio-go client with the root credentials, for a test to look behind the store's
// back (make buckets, damage objects).
func (s *Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	opts := &minio.Options{Creds: credentials.NewStaticV4(AccessKey, SecretKey, "")}
	if s.scheme == "https" {
		opts.Secure = true
		opts.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	}
	c, err := minio.New(s.Endpoint, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Bucket creates a bucket and returns its name.
func (s *Server) Bucket(t testing.TB, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client(t).MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
	return name
}

// writeCerts makes a CA and a certificate for 127.0.0.1 signed by it, writes the certificate and
// key where MinIO's --certs-dir wants them, and returns the CA certificate's path.
func writeCerts(t testing.TB, dir string) string {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "shoal test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(dir, name, kind string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write(dir, "public.crt", "CERTIFICATE", der)
	write(dir, "private.key", "PRIVATE KEY", keyDER)
	// Not in the certs dir, which MinIO reads as its own.
	return write(t.TempDir(), "ca.pem", "CERTIFICATE", caDER)
}
