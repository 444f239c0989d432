package kube

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Host changes the rig makes, and how each is undone. Everything the rig creates is recognisable
// (its addresses, its bridge names, its directory, its cgroup, KUBE-* chains), so teardown needs no
// memory of a crashed run beyond the saved sysctls.

// touchedSysctls are set by the kubelet (overcommit, panic), the bridge CNI plugin (ip_forward)
// and possibly kube-proxy (route_localnet); teardown restores the values found before the first Start.
var touchedSysctls = []string{
	"vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops", "net/ipv4/ip_forward",
	"net/ipv4/conf/all/route_localnet", "net/bridge/bridge-nf-call-iptables",
}

func sysctlPath(k string) string { return filepath.Join("/proc/sys", k) }

// saveSysctls records the current values unless a saved set exists (a crashed run changed them
// already; its saved originals are the truth).
func saveSysctls(file string) error {
	if _, err := os.Stat(file); err == nil {
		return nil
	}
	vals := map[string]string{}
	for _, k := range touchedSysctls {
		b, err := os.ReadFile(sysctlPath(k))
		if err != nil {
			continue // absent on this kernel: nothing to restore
		}
		vals[k] = strings.TrimSpace(string(b))
	}
	b, err := json.Marshal(vals)
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o600)
}

func restoreSysctls(file string) error {
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	vals := map[string]string{}
	if err := json.Unmarshal(b, &vals); err != nil {
		return fmt.Errorf("parse %s: %w", file, err)
	}
	var errs []error
	for k, v := range vals {
		if err := os.WriteFile(sysctlPath(k), []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore sysctl %s=%s: %w", k, v, err))
		}
	}
	if len(errs) == 0 {
		return os.Remove(file)
	}
	return errors.Join(errs...)
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func addLoopbackAddr(ip string) error {
	if hasLoopbackAddr(ip) {
		return nil
	}
	return run("ip", "addr", "add", ip+"/32", "dev", "lo")
}

func hasLoopbackAddr(ip string) bool {
	out, _ := exec.Command("ip", "-o", "-4", "addr", "show", "dev", "lo").Output()
	return strings.Contains(string(out), " "+ip+"/32 ")
}

func delLoopbackAddr(ip string) error {
	if !hasLoopbackAddr(ip) {
		return nil
	}
	return run("ip", "addr", "del", ip+"/32", "dev", "lo")
}

// delLinks removes the rig's CNI bridges (and with them their routes); veths die with the netns.
func delLinks(prefix string) error {
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		return fmt.Errorf("ip link show: %w", err)
	}
	var errs []error
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
		if strings.HasPrefix(name, prefix) {
			errs = append(errs, run("ip", "link", "del", name))
		}
	}
	return errors.Join(errs...)
}

// iptablesCleanup removes every chain whose name starts with one of prefixes (KUBE-* from
// kube-proxy and the kubelet's canaries, the rig's own cut chain) and every jump to them, in the
// tables kube-proxy writes, for IPv4 and IPv6.
func iptablesCleanup(prefixes ...string) error {
	var errs []error
	for _, bin := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(bin); err != nil {
			continue
		}
		for _, table := range []string{"filter", "nat", "mangle"} {
			errs = append(errs, iptablesCleanupTable(bin, table, prefixes))
		}
	}
	return errors.Join(errs...)
}

func iptablesCleanupTable(bin, table string, prefixes []string) error {
	out, err := exec.Command(bin, "-w", "-t", table, "-S").Output()
	if err != nil {
		return nil // table or family unavailable here: nothing of ours in it
	}
	ours := func(chain string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(chain, p) {
				return true
			}
		}
		return false
	}
	var chains []string
	var errs []error
	for _, line := range strings.Split(string(out), "\n") {
		f := splitRule(line)
		switch {
		case len(f) >= 2 && f[0] == "-N" && ours(f[1]):
			chains = append(chains, f[1])
		case len(f) >= 2 && f[0] == "-A" && !ours(f[1]) && jumpsTo(f, ours):
			// A rule in a chain not ours that jumps into ours: delete it by its own spec.
			args := append([]string{"-w", "-t", table, "-D"}, f[1:]...)
			errs = append(errs, run(bin, args...))
		}
	}
	for _, c := range chains {
		errs = append(errs, run(bin, "-w", "-t", table, "-F", c))
	}
	for _, c := range chains {
		errs = append(errs, run(bin, "-w", "-t", table, "-X", c))
	}
	return errors.Join(errs...)
}

// splitRule splits a line of iptables -S output into arguments; comments are double-quoted.
func splitRule(line string) []string {
	var args []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case ch == '\\' && inQuote && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case ch == '"':
			inQuote, have = !inQuote, true
		case (ch == ' ' || ch == '\t') && !inQuote:
			if have {
				args = append(args, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(ch)
			have = true
		}
	}
	if have {
		args = append(args, cur.String())
	}
	return args
}

func jumpsTo(f []string, ours func(string) bool) bool {
	for i := 0; i+1 < len(f); i++ {
		if (f[i] == "-j" || f[i] == "-g") && ours(f[i+1]) {
			return true
		}
	}
	return false
}

// hasKubeChains reports the chains of ours still present, for tests of teardown.
func leftoverChains(prefixes ...string) []string {
	var left []string
	for _, bin := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"filter", "nat", "mangle"} {
			out, err := exec.Command(bin, "-w", "-t", table, "-S").Output()
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(out), "\n") {
				f := strings.Fields(line)
				if len(f) >= 2 && f[0] == "-N" {
					for _, p := range prefixes {
						if strings.HasPrefix(f[1], p) {
							left = append(left, bin+" "+table+" "+f[1])
						}
					}
				}
			}
		}
	}
	return left
}

// mountsUnder lists mount points at or below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mounts []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			mounts = append(mounts, mp)
		}
	}
	// Deepest first; a path mounted twice is listed twice and unmounted twice.
	sort.SliceStable(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	return mounts, s.Err()
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountAll detaches every mount below dir (kubelet's volumes and root bind mount, containerd's
// rootfs overlays, shm and netns files) until none is left.
func unmountAll(dir string) error {
	for range 10 {
		mounts, err := mountsUnder(dir)
		if err != nil {
			return err
		}
		if len(mounts) == 0 {
			return nil
		}
		for _, m := range mounts {
			_ = syscall.Unmount(m, syscall.MNT_DETACH)
		}
	}
	mounts, _ := mountsUnder(dir)
	return fmt.Errorf("mounts left under %s: %v", dir, mounts)
}

// cgroupControllers lists the v1 hierarchies (and the unified one) the kubelet uses.
func cgroupControllers() []string {
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join("/sys/fs/cgroup", e.Name()))
		}
	}
	return dirs
}

// makeCgroup creates the kubelet's cgroupRoot in every hierarchy; cpuset needs its cpus and
// mems copied from the parent before any task may join.
func makeCgroup(rel string) error {
	for _, c := range cgroupControllers() {
		parts := strings.Split(strings.Trim(rel, "/"), "/")
		p := c
		for _, part := range parts {
			parent := p
			p = filepath.Join(p, part)
			if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return fmt.Errorf("create cgroup %s: %w", p, err)
			}
			if filepath.Base(c) == "cpuset" {
				for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
					if cur, _ := os.ReadFile(filepath.Join(p, f)); strings.TrimSpace(string(cur)) != "" {
						continue
					}
					v, err := os.ReadFile(filepath.Join(parent, f))
					if err != nil {
						return err
					}
					if err := os.WriteFile(filepath.Join(p, f), v, 0o644); err != nil {
						return fmt.Errorf("init %s/%s: %w", p, f, err)
					}
				}
			}
		}
	}
	return nil
}

// cgroupPIDs lists every process in the cgroup subtree rel (as seen by the pids hierarchy, or
// the first one that has it).
func cgroupPIDs(rel string) []int {
	seen := map[int]bool{}
	for _, c := range cgroupControllers() {
		root := filepath.Join(c, rel)
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					seen[pid] = true
				}
			}
			return nil
		})
	}
	pids := make([]int, 0, len(seen))
	for p := range seen {
		pids = append(pids, p)
	}
	return pids
}

// removeCgroup removes the cgroup subtree rel, deepest first, in every hierarchy.
func removeCgroup(rel string) error {
	var errs []error
	for _, c := range cgroupControllers() {
		root := filepath.Join(c, rel)
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			var err error
			for range 50 { // a killed task leaves its cgroup a moment later
				if err = os.Remove(dirs[i]); err == nil || errors.Is(err, os.ErrNotExist) {
					err = nil
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}
