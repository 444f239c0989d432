package kube

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/shoal-db/shoal/test/freeport"
)

// apiServer is a real etcd and kube-apiserver on loopback, from the rig's binaries
// (test/rig/install.sh kube), with client certificates for any user the test names.
type apiServer struct {
	url    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caPEM  []byte
	tmpDir string
}

// kubeBin is where the rig installs the control plane's binaries.
func kubeBin() string {
	cache := os.Getenv("SHOAL_CACHE")
	if cache == "" {
		cache = "/var/cache/shoal-test"
	}
	return filepath.Join(cache, "kube-v1.37.2", "bin")
}

// startAPIServer starts etcd and kube-apiserver for the test, stopping both at its end. Without
// the binaries (make deps builds them) the test fails: a missing server is no reason to pass.
func startAPIServer(t *testing.T) *apiServer {
	t.Helper()
	bin := kubeBin()
	for _, name := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			t.Fatalf("%s not built (make deps, or bash test/rig/install.sh kube, builds it into %s): %v", name, bin, err)
		}
	}
	dir := t.TempDir()
	s := &apiServer{tmpDir: dir}
	s.newCA(t)

	etcdPort, peerPort, apiPort := freeport.Port(t), freeport.Port(t), freeport.Port(t)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	start(t, filepath.Join(dir, "etcd.log"), filepath.Join(bin, "etcd"), "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL, "--initial-cluster", "default="+peerURL,
		"--unsafe-no-fsync", "--log-level", "warn")

	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	saFile := writeFile(t, dir, "sa.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}))
	caFile := writeFile(t, dir, "ca.crt", s.caPEM)
	start(t, filepath.Join(dir, "apiserver.log"), filepath.Join(bin, "kube-apiserver"),
		"--etcd-servers", etcdURL, "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(apiPort), "--cert-dir", filepath.Join(dir, "certs"),
		"--client-ca-file", caFile, "--authorization-mode", "RBAC",
		"--service-cluster-ip-range", "10.96.0.0/24", "--endpoint-reconciler-type", "none",
		"--service-account-issuer", "https://kubernetes.default.svc", "--service-account-key-file", saFile,
		"--service-account-signing-key-file", saFile, "--disable-admission-plugins", "ServiceAccount")
	s.url = "https://127.0.0.1:" + strconv.Itoa(apiPort)

	admin := s.client(t, "admin", "system:masters", nil)
	deadline := time.Now().Add(90 * time.Second)
	for {
		body, err := admin.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(t.Context())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "apiserver.log"))
			t.Fatalf("kube-apiserver not ready after 90s: %v %s\n%s", err, body, tail(log, 3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	return s
}

// client is a clientset authenticated as user (in group, if not empty); count, if set, counts
// the requests made.
func (s *apiServer) client(t *testing.T, user, group string, count *atomic.Int64) *kubernetes.Clientset {
	t.Helper()
	cfg := s.restConfig(t, user, group)
	if count != nil {
		cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if r.URL.Query().Get("watch") != "true" {
					count.Add(1)
				}
				return rt.RoundTrip(r)
			})
		}
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (s *apiServer) restConfig(t *testing.T, user, group string) *rest.Config {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	subj := pkix.Name{CommonName: user}
	if group != "" {
		subj.Organization = []string{group}
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: subj,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.ca, &key.PublicKey, s.caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &rest.Config{Host: s.url, QPS: 100, Burst: 200, TLSClientConfig: rest.TLSClientConfig{
		// The serving certificate is the API server's own self-signed one, on loopback.
		Insecure: true,
		CertData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyData:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}}
}

func (s *apiServer) newCA(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "shoal-test-kube-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if s.ca, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	s.caKey, s.caPEM = key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// start runs a process for the test's duration, its output in logFile; it is killed and awaited
// at cleanup, even when the test fails.
func start(t *testing.T, logFile, name string, args ...string) {
	t.Helper()
	out, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		out.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("%s log:\n%s", filepath.Base(name), tail(b, 2000))
		}
	})
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
