package chart

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shoal-db/shoal/consensus/peertls"
	"github.com/shoal-db/shoal/test/freeport"
)

// apiServer is a real etcd and kube-apiserver (the test cluster's binaries) with no nodes: enough
// for helm to install and upgrade the chart for real, lookup included, and for the API server to
// validate every object and authorize the agent's ServiceAccount. Nothing is scheduled.
type apiServer struct {
	url, token, kubeconfig string
	client                 *http.Client
}

func kubeBin(t *testing.T, name string) string {
	bin := filepath.Join(cacheDir(), "kube-v1.37.2", "bin", name)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is not installed (%v); install it with `make deps` or `bash test/rig/install.sh kube`", name, err)
	}
	return bin
}

func freePort(t *testing.T) string { return strconv.Itoa(freeport.Port(t)) }

// start runs bin with args until the test ends, its output in dir/name.log.
func start(t *testing.T, dir, name, bin string, args ...string) {
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
		if t.Failed() {
			out, _ := os.ReadFile(log.Name())
			if len(out) > 4000 {
				out = out[len(out)-4000:]
			}
			t.Logf("%s log (tail):\n%s", name, out)
		}
	})
}

func startAPIServer(t *testing.T) *apiServer {
	dir := t.TempDir()
	etcdPort, peerPort, apiPort := freePort(t), freePort(t), freePort(t)
	start(t, dir, "etcd", kubeBin(t, "etcd"), "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", "http://127.0.0.1:"+etcdPort, "--advertise-client-urls", "http://127.0.0.1:"+etcdPort,
		"--listen-peer-urls", "http://127.0.0.1:"+peerPort, "--initial-advertise-peer-urls", "http://127.0.0.1:"+peerPort,
		"--initial-cluster", "default=http://127.0.0.1:"+peerPort, "--log-level", "warn")

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "sa.key")
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})))
	s := &apiServer{url: "https://127.0.0.1:" + apiPort, token: rand.Text()}
	tokens := filepath.Join(dir, "tokens.csv")
	writeFile(t, tokens, s.token+",admin,admin,system:masters\n")
	start(t, dir, "kube-apiserver", kubeBin(t, "kube-apiserver"),
		"--etcd-servers", "http://127.0.0.1:"+etcdPort,
		"--bind-address", "127.0.0.1", "--secure-port", apiPort, "--cert-dir", filepath.Join(dir, "certs"),
		// A loopback address cannot be advertised in the kubernetes Service's endpoints.
		"--endpoint-reconciler-type", "none",
		"--service-cluster-ip-range", "10.96.0.0/16",
		"--service-account-issuer", "https://kubernetes.default.svc", "--service-account-key-file", keyFile,
		"--service-account-signing-key-file", keyFile,
		"--token-auth-file", tokens, "--authorization-mode", "RBAC")

	// The API server makes its own serving certificate; only this test talks to it.
	s.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(250 * time.Millisecond) {
		if _, err := s.do("GET", "/readyz", nil, nil); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("kube-apiserver not ready: %v", err)
		}
	}
	s.kubeconfig = filepath.Join(dir, "kubeconfig")
	writeFile(t, s.kubeconfig, fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: %q}}]
contexts: [{name: test, context: {cluster: test, user: admin}}]
current-context: test
`, s.url, s.token))
	os.Chmod(s.kubeconfig, 0o600)
	return s
}

// do sends a request as the admin and decodes a JSON answer into out (when not nil).
func (s *apiServer) do(method, path string, body, out any) (int, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.url+path, r)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(b, out)
	}
	return resp.StatusCode, nil
}

func (s *apiServer) helm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := helm(t, append(args, "--kubeconfig", s.kubeconfig)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (s *apiServer) secret(t *testing.T, name string) (*corev1.Secret, int) {
	var sec corev1.Secret
	code, err := s.do("GET", "/api/v1/namespaces/"+namespace+"/secrets/"+name, nil, &sec)
	if err != nil && code != http.StatusNotFound {
		t.Fatal(err)
	}
	return &sec, code
}

// TestInstallUpgradeOnAPIServer installs the chart's test values through a real API server,
// upgrades to one more member, and checks that every generated secret survived (the new
// member's certificate signed by the same CA), that the agent's ServiceAccount is allowed
// exactly its Role, and that the MySQL passwords outlive an uninstall.
func TestInstallUpgradeOnAPIServer(t *testing.T) {
	s := startAPIServer(t)
	values := filepath.Join(chartDir(t), "ci", "test-values-mariadb.yaml")
	notes := s.helm(t, "install", release, chartDir(t), "--namespace", namespace, "--create-namespace", "--values", values)
	for _, want := range []string{"-L shoal.io/role", fullname + "-primary." + namespace + ".svc.cluster.local:3306"} {
		if !strings.Contains(notes, want) {
			t.Errorf("the release notes do not say %q:\n%s", want, notes)
		}
	}

	secretNames := []string{"auth", "gossip", "admin", "ca", "tls"}
	before := map[string]map[string][]byte{}
	for _, n := range secretNames {
		sec, code := s.secret(t, fullname+"-"+n)
		if code != http.StatusOK {
			t.Fatalf("secret %s-%s not installed", fullname, n)
		}
		before[n] = sec.Data
	}

	s.helm(t, "upgrade", release, chartDir(t), "--namespace", namespace, "--values", values, "--set", "replicas=4")
	for _, n := range secretNames {
		sec, _ := s.secret(t, fullname+"-"+n)
		for k, v := range before[n] {
			if !bytes.Equal(sec.Data[k], v) {
				t.Errorf("secret %s-%s: %s changed in the upgrade", fullname, n, k)
			}
		}
		if n != "tls" && len(sec.Data) != len(before[n]) {
			t.Errorf("secret %s-%s: keys %d, were %d", fullname, n, len(sec.Data), len(before[n]))
		}
	}
	tlsSec, _ := s.secret(t, fullname+"-tls")
	newMember := fullname + "-3"
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(before["ca"]["ca.crt"])
	pair, err := tls.X509KeyPair(tlsSec.Data[newMember+".crt"], tlsSec.Data[newMember+".key"])
	if err != nil {
		t.Fatalf("the new member's certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := peertls.Verify([]*x509.Certificate{leaf}, roots, "", x509.ExtKeyUsageServerAuth); err != nil {
		t.Errorf("the new member's certificate is not from the kept CA: %v", err)
	}

	// The agent's ServiceAccount, as the API server's RBAC authorizer judges it.
	sa := "system:serviceaccount:" + namespace + ":" + fullname
	for _, c := range []struct {
		verb, group, resource, ns string
		allowed                   bool
	}{
		{"patch", "", "pods", namespace, true},
		{"watch", "", "pods", namespace, true},
		{"create", "discovery.k8s.io", "endpointslices", namespace, true},
		{"create", "", "events", namespace, true},
		{"get", "apps", "statefulsets", namespace, true},
		{"delete", "", "pods", namespace, false},                   // heal.enabled is off; a roll evicts
		{"create", "", "pods/eviction", namespace, true},           // updateStrategy OnDelete: the leader rolls the pods
		{"delete", "", "persistentvolumeclaims", namespace, false}, // heal.deleteVolume is off
		{"get", "", "secrets", namespace, false},
		{"delete", "discovery.k8s.io", "endpointslices", namespace, true},
		{"delete", "", "services", namespace, false},
		{"update", "", "pods", namespace, false},
		{"update", "apps", "statefulsets", namespace, false},
		{"patch", "", "pods", "default", false}, // only its own namespace
	} {
		resource, sub, _ := strings.Cut(c.resource, "/")
		review := authv1.SubjectAccessReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "authorization.k8s.io/v1", Kind: "SubjectAccessReview"},
			Spec: authv1.SubjectAccessReviewSpec{User: sa, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace},
				ResourceAttributes: &authv1.ResourceAttributes{Namespace: c.ns, Verb: c.verb, Group: c.group, Resource: resource, Subresource: sub}},
		}
		if _, err := s.do("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review, &review); err != nil {
			t.Fatal(err)
		}
		if review.Status.Allowed != c.allowed {
			t.Errorf("%s %s/%s in %s: allowed %v, want %v (%s)", c.verb, c.group, c.resource, c.ns, review.Status.Allowed, c.allowed, review.Status.Reason)
		}
	}

	s.helm(t, "uninstall", release, "--namespace", namespace)
	if auth, code := s.secret(t, fullname+"-auth"); code != http.StatusOK || !bytes.Equal(auth.Data["root-password"], before["auth"]["root-password"]) {
		t.Errorf("the MySQL passwords did not outlive the uninstall (status %d)", code)
	}
	if _, code := s.secret(t, fullname+"-gossip"); code != http.StatusNotFound {
		t.Errorf("the gossip key outlived the uninstall (status %d)", code)
	}
}
