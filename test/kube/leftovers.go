package kube

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Leftovers lists what of a rig in dir is still on the host: processes naming its directory, mounts below it, its addresses on lo, its bridges and its iptables
// chains. Empty after a clean Stop.
func Leftovers(dir string) []string {
	if dir == "" {
		dir = DefaultDir
	}
	var left []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		// Every component names the rig's directory in its arguments (other tests run the same
		// binaries for their own control planes: those are not ours).
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		args := strings.ReplaceAll(string(cmdline), "\x00", " ")
		if strings.Contains(args, dir+"/") {
			if stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); strings.Contains(string(stat), ") Z ") {
				continue // exited, waiting for its parent to reap it
			}
			left = append(left, "process "+e.Name()+": "+args)
		}
	}
	if m, _ := mountsUnder(dir); len(m) > 0 {
		for _, p := range m {
			left = append(left, "mount "+p)
		}
	}
	for i := 0; i <= 9; i++ {
		if ip := "198.51.100.1" + strconv.Itoa(i); hasLoopbackAddr(ip) {
			left = append(left, "address "+ip+" on lo")
		}
	}
	if out, err := exec.Command("ip", "-o", "link", "show").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], bridgePrefix) {
				left = append(left, "link "+strings.TrimSuffix(f[1], ":"))
			}
		}
	}
	for _, ch := range leftoverChains("KUBE-", cutChain) {
		left = append(left, "iptables chain "+ch)
	}
	return left
}

// RSS reports the resident memory (bytes) of each running component, by name.
func (c *Cluster) RSS() map[string]int64 {
	rss := map[string]int64{}
	files, _ := filepath.Glob(filepath.Join(c.dir, "pids", "*.pid"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid := strings.Fields(string(b))
		if len(pid) == 0 {
			continue
		}
		status, err := os.ReadFile(filepath.Join("/proc", pid[0], "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				rss[strings.TrimSuffix(filepath.Base(f), ".pid")] = kb * 1024
			}
		}
	}
	return rss
}
