package chart

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestPreStop runs mysqld's preStop script in a PID namespace of its own (as the pod's shared
// one; never among this machine's real agents) beside a stand-in agent, a process named shoal:
// the script must stop it and return once it is gone, and return at once when there is none.
func TestPreStop(t *testing.T) {
	var cm corev1.ConfigMap
	renderSet(t, "defaults").get(t, "ConfigMap", fullname, &cm)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pre-stop.sh"), cm.Data["pre-stop.sh"])
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "shoal"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, script, want string }{
		{"agent running", dir + "/shoal 300 & pid=$!; sleep 0.2; sh " + dir + "/pre-stop.sh; echo prestop=$?; wait $pid; echo agent=$?",
			"prestop=0\nagent=143\n"},
		{"no agent", "sh " + dir + "/pre-stop.sh; echo prestop=$?", "prestop=0\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := exec.Command("timeout", "60", "unshare", "--pid", "--fork", "--mount-proc", "/bin/sh", "-c", c.script).CombinedOutput()
			if err != nil || !strings.HasSuffix(string(out), c.want) {
				t.Fatalf("got %v:\n%s\nwant it to end with\n%s", err, out, c.want)
			}
		})
	}
}
