package chart

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-db/shoal/agent/config"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/harness"
)

// buildShoal builds the shoal binary the image holds.
func buildShoal(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "shoal")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/shoal")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/shoal: %v\n%s", err, out)
	}
	return bin
}

// TestAgentOnChartMember runs the real agent as the chart's sidecar runs it (its command, config
// file, environment, secret files) beside a server the chart's init script made and the chart's
// my.cnf runs: a one-member cluster bootstraps Raft over the chart's TLS, the agent logs in with
// the chart's account, opens writes and reports ready, and the admin token opens /v1/status.
// Only what cannot be the same on this machine differs: the pod's paths lie under a scratch
// dir, and the agent and mysqld listen on free loopback ports.
func TestAgentOnChartMember(t *testing.T) {
	bin := buildShoal(t)
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		one := valuesFile(t, "replicas: 1\nmysql: {semiSync: async}\nagent: {advertise: ip}\n")
		mb := newMember(t, flavor, 0, fmt.Sprintf("ci/test-values-%s.yaml", flavor), one)
		mb.pod.ip = "127.0.0.1"
		mb.initialize(t)
		mb.startServer(t)

		agent := container(t, statefulSet(t, mb.m).Spec.Template.Spec.InitContainers, "shoal")
		var environ []string
		for k, v := range mb.pod.env(t, agent) {
			environ = append(environ, k+"="+v)
		}
		args := slices.Clone(agent.Command[1:])
		i := slices.Index(args, "--config")
		args[i+1] = mb.path(args[i+1])
		cfg, err := config.Load("", environ, args[1:])
		if err != nil {
			t.Fatal(err)
		}
		// The pod's paths, as they lie here.
		for key, p := range map[string]string{"node.data_dir": cfg.Node.DataDir, "mysql.addr": cfg.MySQL.Addr,
			"mysql.password_file": cfg.MySQL.PasswordFile, "mysql.repl_password_file": cfg.MySQL.ReplPasswordFile,
			"mysql.pid_file": cfg.MySQL.PIDFile, "mysql.data_dir": cfg.MySQL.DataDir, "raft.tls.cert_file": cfg.Raft.CertFile,
			"raft.tls.key_file": cfg.Raft.KeyFile, "raft.tls.ca_file": cfg.Raft.CAFile, "admin.token_file": cfg.Admin.TokenFile,
			"gossip.key_files": strings.Join(cfg.Gossip.KeyFiles, ",")} {
			args = append(args, "--"+key, mb.path(p))
		}
		admin := "127.0.0.1:" + freePort(t)
		gossip, raft := "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)
		// No Kubernetes API here: the publisher the chart turns on is off for this run.
		args = append(args, "--admin.listen", admin, "--gossip.bind", gossip, "--gossip.advertise", gossip,
			"--raft.bind", raft, "--raft.advertise", raft, "--gossip.seeds", "", "--mysql.advertise_addr", "127.0.0.1:"+mb.port,
			"--kubernetes.enabled", "false")

		logFile, err := os.Create(filepath.Join(t.TempDir(), "agent.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = append(environ, "PATH=/usr/bin:/bin")
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
			if t.Failed() {
				out, _ := os.ReadFile(logFile.Name())
				if len(out) > 6000 {
					out = out[len(out)-6000:]
				}
				t.Logf("agent log (tail):\n%s", out)
			}
		})

		// The probes' view: HTTPS with the member's certificate, which the kubelet does not check.
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		get := func(path, token string) (int, string) {
			req, _ := http.NewRequestWithContext(context.Background(), "GET", "https://"+admin+path, nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := client.Do(req)
			if err != nil {
				return 0, err.Error()
			}
			defer resp.Body.Close()
			var b strings.Builder
			buf := make([]byte, 512)
			n, _ := resp.Body.Read(buf)
			b.Write(buf[:n])
			return resp.StatusCode, b.String()
		}
		for deadline := time.Now().Add(time.Minute); ; {
			code, body := get("/readyz", "")
			if code == http.StatusOK {
				break
			}
			select {
			case err := <-exited:
				exited <- err
				t.Fatalf("the agent exited: %v", err)
			case <-time.After(250 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz never answered 200; last %d %s", code, body)
			}
		}
		if code, _ := get("/healthz", ""); code != http.StatusOK {
			t.Errorf("/healthz: %d", code)
		}
		token, err := os.ReadFile(mb.path(cfg.Admin.TokenFile))
		if err != nil {
			t.Fatal(err)
		}
		if code, body := get("/v1/status", string(token)); code != http.StatusOK {
			t.Errorf("/v1/status with the chart's token: %d %s", code, body)
		}
		if code, _ := get("/v1/status", "wrong"); code != http.StatusUnauthorized {
			t.Errorf("/v1/status with a wrong token: %d, want 401", code)
		}
		// `kubectl exec <pod> -c shoal -- /shoal status`, as NOTES.txt says: the CLI finds the
		// token and the CA in the container's environment (paths moved here, as above).
		podEnv := mb.pod.env(t, agent)
		status := exec.Command(bin, "status", "--addr", admin)
		status.Env = []string{"SHOAL_ADMIN_TOKEN_FILE=" + mb.path(podEnv["SHOAL_ADMIN_TOKEN_FILE"]),
			"SHOAL_RAFT_TLS_CA_FILE=" + mb.path(podEnv["SHOAL_RAFT_TLS_CA_FILE"])}
		if out, err := status.CombinedOutput(); err != nil || !strings.Contains(string(out), mb.pod.name) {
			t.Errorf("shoal status in the agent's container: %v\n%s", err, out)
		}
		db := openSocket(t, mb.path("/run/mysqld/mysqld.sock"), mb.initEnv["ADMIN_USER"], mb.passwords["admin-password"])
		var readOnly bool
		if err := db.QueryRow("SELECT @@read_only").Scan(&readOnly); err != nil || readOnly {
			t.Errorf("the lone member's server is read only (%v): the agent did not promote it", err)
		}
		db.Close()
	})
}
