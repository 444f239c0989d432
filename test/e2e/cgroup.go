package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// cgroupRoot is the cgroup v2 hierarchy. Each simulated host's processes (its mysqld and its
// agent) go into a group of their own, so iptables can drop everything that host sends
// (`-m cgroup --path`), whichever source address the kernel picks: on loopback that is
// usually 127.0.0.1, which an address rule cannot tell apart.
func cgroupRoot() string {
	for _, p := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err == nil {
			return p
		}
	}
	return ""
}

// hostGroup returns member i's cgroup path relative to the v2 root, creating it.
func (c *Cluster) hostGroup(i int) (string, error) {
	root := cgroupRoot()
	if root == "" {
		return "", fmt.Errorf("no cgroup v2 hierarchy mounted")
	}
	rel := filepath.Join("shoal-e2e", strconv.Itoa(os.Getpid()), filepath.Base(c.dir), c.Name(i))
	if err := os.MkdirAll(filepath.Join(root, rel), 0o755); err != nil {
		return "", err
	}
	c.t.Cleanup(func() {
		// Empty by then: every process in it was killed.
		for p := rel; p != "." && p != "shoal-e2e"; p = filepath.Dir(p) {
			os.Remove(filepath.Join(root, p))
		}
	})
	return rel, nil
}

// joinHost moves pid into member i's cgroup.
func (c *Cluster) joinHost(i, pid int) {
	c.t.Helper()
	if err := c.moveToHost(i, pid); err != nil {
		c.t.Fatal(err)
	}
}

// moveToHost is joinHost for goroutines other than the test's, which must not fail it.
func (c *Cluster) moveToHost(i, pid int) error {
	rel, err := c.hostGroup(i)
	if err != nil {
		return fmt.Errorf("cgroup for %s: %w", c.Name(i), err)
	}
	if err := os.WriteFile(filepath.Join(cgroupRoot(), rel, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("move pid %d into %s: %w", pid, rel, err)
	}
	return nil
}
