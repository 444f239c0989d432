package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cniNetPrefix names the rig's CNI networks (and so libcni's cache files of them).
const cniNetPrefix = "shoal-kube-"

// cutChain holds the DROP rules of lost nodes.
const cutChain = "SHOAL-KUBE-CUT"

func output(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (n *Node) socket() string     { return filepath.Join(n.dir, "containerd.sock") }
func (n *Node) cgroupRoot() string { return "/" + cgroupParent + "/" + n.Name }

// startNodes starts every node's containerd on a copy of the seed root (which holds the rig's
// images), imports the extra image tarballs (the shoal image, which changes with the code), then
// starts its kubelet.
func (c *Cluster) startNodes(ctx context.Context, seedImages, extraImages []string) error {
	seed, err := c.seedRoot(ctx, seedImages)
	if err != nil {
		return err
	}
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Go(func() {
			if err := os.MkdirAll(filepath.Join(n.dir, "containerd"), 0o755); err != nil {
				errs[i] = err
				return
			}
			if err := copySeed(ctx, seed, filepath.Join(n.dir, "containerd/root")); err != nil {
				errs[i] = fmt.Errorf("%s: copy the image seed: %w", n.Name, err)
				return
			}
			if err := c.startContainerd(ctx, n); err != nil {
				errs[i] = err
				return
			}
			for _, img := range extraImages {
				if _, err := output(ctx, "ctr", "--address", n.socket(), "-n", "k8s.io", "images", "import", img); err != nil {
					errs[i] = fmt.Errorf("%s: import %s: %w", n.Name, img, err)
					return
				}
			}
			errs[i] = c.startKubelet(n)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// copySeed makes dst a containerd root like seed. The content blobs and the unpacked layers,
// which containerd never writes (a container writes to its own upper dir), are hard links: a
// copy wrote 1.4 GB per node at every start and cost as long again to remove. Every other file
// (the bolt databases, written in place) is the node's own copy. Where links cannot be made
// (another file system), all of it is copied.
func copySeed(ctx context.Context, seed, dst string) error {
	if _, err := output(ctx, "cp", "-a", "--link", seed, dst); err != nil {
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
		_, err := output(ctx, "cp", "-a", seed, dst)
		return err
	}
	return filepath.WalkDir(dst, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dst, path)
		if err != nil {
			return err
		}
		switch {
		case d.IsDir() && immutableInSeed(rel):
			return filepath.SkipDir
		case !d.Type().IsRegular():
			return nil
		}
		// cp of one file makes a new inode; the rename puts it in the link's place.
		if _, err := output(ctx, "cp", "-a", path, path+".own"); err != nil {
			return err
		}
		return os.Rename(path+".own", path)
	})
}

// immutableInSeed reports whether directory rel of a containerd root holds only files
// containerd never changes: content blobs (named by their digest) and unpacked layers.
func immutableInSeed(rel string) bool {
	p := strings.Split(filepath.ToSlash(rel), "/")
	switch {
	case len(p) == 2 && p[0] == "io.containerd.content.v1.content" && p[1] == "blobs":
		return true
	case len(p) == 4 && p[0] == "io.containerd.snapshotter.v1.overlayfs" && p[1] == "snapshots" && p[3] == "fs":
		return true
	}
	return false
}

// seedRoot returns a containerd root directory holding the given image tarballs imported and
// unpacked, built once and cached by the tarballs' names, sizes and times. Copying it per node
// takes seconds where importing (gunzip and unpack) takes a minute or more per node; the root's
// metadata names content and snapshots relative to it, so a copy is a valid root.
func (c *Cluster) seedRoot(ctx context.Context, tars []string) (string, error) {
	h := sha256.New()
	for _, t := range tars {
		fi, err := os.Stat(t)
		if err != nil {
			return "", fmt.Errorf("image %s: %w", t, err)
		}
		target, _ := filepath.EvalSymlinks(t)
		fmt.Fprintf(h, "%s %d %d\n", target, fi.Size(), fi.ModTime().UnixNano())
	}
	base := filepath.Join(cacheDir(), "kube-"+Version)
	seed := filepath.Join(base, "containerd-seed-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(seed); err == nil {
		return seed, nil
	}
	c.log.Info("importing images into a containerd seed root (once per image set)", "root", seed)
	tmp := seed + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	sock := filepath.Join(tmp, "containerd.sock")
	conf := fmt.Sprintf("version = 2\nroot = %q\nstate = %q\n[grpc]\n  address = %q\n[ttrpc]\n  address = %q\n",
		filepath.Join(tmp, "root"), filepath.Join(tmp, "state"), sock, sock+".ttrpc")
	if err := writeFile(filepath.Join(tmp, "containerd.toml"), conf, 0o644); err != nil {
		return "", err
	}
	cmd := exec.Command("/usr/bin/containerd", "--config", filepath.Join(tmp, "containerd.toml"))
	logf, err := os.Create(filepath.Join(c.dir, "logs", "containerd-seed.log"))
	if err != nil {
		return "", err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start seed containerd: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = unmountAll(tmp)
	}
	err = poll(ctx, 30*time.Second, "seed containerd", func() error {
		_, err := output(ctx, "ctr", "--address", sock, "version")
		return err
	})
	for _, t := range tars {
		if err != nil {
			break
		}
		_, err = output(ctx, "ctr", "--address", sock, "-n", "k8s.io", "images", "import", t)
	}
	stop()
	if err != nil {
		return "", fmt.Errorf("seed containerd root: %w", err)
	}
	// Older seeds are of images since rebuilt.
	old, _ := filepath.Glob(filepath.Join(base, "containerd-seed-*"))
	for _, o := range old {
		if o != tmp {
			_ = os.RemoveAll(o)
		}
	}
	if err := os.Rename(filepath.Join(tmp, "root"), seed); err != nil {
		return "", err
	}
	return seed, os.RemoveAll(tmp)
}

// startContainerd runs the node's own containerd: own root, state, socket, runc root and CNI
// config. restrict_oom_score_adj is needed here (the machine lacks CAP_SYS_RESOURCE, so runc
// cannot lower a score), and netns files live under the node's state dir so teardown finds them.
func (c *Cluster) startContainerd(ctx context.Context, n *Node) error {
	for _, d := range []string{"containerd/root", "containerd/state", "runc", "cni/net.d", "cni/ipam", "cni/cache"} {
		if err := os.MkdirAll(filepath.Join(n.dir, d), 0o755); err != nil {
			return err
		}
	}
	conf := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %[6]q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[7]q
[plugins."io.containerd.internal.v1.opt"]
  path = %[8]q
`, filepath.Join(n.dir, "containerd/root"), filepath.Join(n.dir, "containerd/state"), n.socket(), n.socket()+".ttrpc",
		PauseImage, filepath.Join(n.dir, "runc"), filepath.Join(n.dir, "cni/net.d"), filepath.Join(n.dir, "containerd/opt"))
	cfg := filepath.Join(n.dir, "containerd.toml")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return err
	}
	// The bridge: own name, gateway on the host side, pod subnet and IPAM state per node. Pods on
	// different nodes reach each other through the host's routes to each bridge.
	cni := fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "%[1]s%[2]s",
  "plugins": [
    {"type": "bridge", "bridge": "%[3]s%[4]d", "isGateway": true, "hairpinMode": true, "ipMasq": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %[5]q}]], "routes": [{"dst": "0.0.0.0/0"}],
              "dataDir": %[6]q}},
    {"type": "loopback"}
  ]
}
`, cniNetPrefix, n.Name, bridgePrefix, n.index, n.PodCIDR, filepath.Join(n.dir, "cni/ipam"))
	if err := os.WriteFile(filepath.Join(n.dir, "cni/net.d/10-bridge.conflist"), []byte(cni), 0o644); err != nil {
		return err
	}
	if err := makeCgroup(n.cgroupRoot()); err != nil {
		return err
	}
	if err := c.spawn("containerd-"+n.Name, "/usr/bin/containerd", "--config", cfg); err != nil {
		return err
	}
	return poll(ctx, 30*time.Second, n.Name+" containerd", func() error {
		_, err := output(ctx, "ctr", "--address", n.socket(), "version")
		return err
	})
}

// startKubelet runs the node's kubelet with the settings this machine needs (see
// docs/test-rig: cgroup v1 allowed, cgroupfs driver, no iptables util chains, swap tolerated).
func (c *Cluster) startKubelet(n *Node) error {
	for _, d := range []string{"kubelet", "kubelet-certs", "pod-logs", "volume-plugins"} {
		if err := os.MkdirAll(filepath.Join(n.dir, d), 0o755); err != nil {
			return err
		}
	}
	conf := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
port: 10250
readOnlyPort: 0
healthzBindAddress: %[1]s
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[2]q}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupRoot: %[3]s
failCgroupV1: false
failSwapOn: false
makeIPTablesUtilChains: false
clusterDomain: %[4]s
clusterDNS: [%[5]s]
podCIDR: %[6]s
containerRuntimeEndpoint: unix://%[7]s
podLogsDir: %[8]q
volumePluginDir: %[9]q
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "50Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
`, n.IP, c.pki.path("ca.crt"), n.cgroupRoot(), DNSDomain, ControlIP, n.PodCIDR, n.socket(),
		filepath.Join(n.dir, "pod-logs"), filepath.Join(n.dir, "volume-plugins"))
	cfg := filepath.Join(n.dir, "kubelet.yaml")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return err
	}
	return c.spawn("kubelet-"+n.Name, Bin("kubelet"),
		"--config="+cfg, "--kubeconfig="+c.pki.path(n.Name+".kubeconfig"),
		"--root-dir="+filepath.Join(n.dir, "kubelet"), "--cert-dir="+filepath.Join(n.dir, "kubelet-certs"),
		"--hostname-override="+n.Name, "--node-ip="+n.IP, "--v=1")
}

// killNode SIGKILLs a node's kubelet, its containers (everything in its cgroup subtree), the
// containerd shims serving its socket, and its containerd.
func killNode(ctx context.Context, dir, name string) error {
	n := &Node{Name: name, dir: filepath.Join(dir, name)}
	var errs []error
	// containerd before its shims: a containerd that sees a shim die starts a cleanup shim.
	errs = append(errs, killRecorded(ctx, dir, "kubelet-"+name))
	errs = append(errs, killRecorded(ctx, dir, "containerd-"+name))
	errs = append(errs, killPIDs(ctx, cgroupPIDs(n.cgroupRoot())))
	errs = append(errs, killPIDs(ctx, pidsWithArg(n.socket())))
	errs = append(errs, killPIDs(ctx, cgroupPIDs(n.cgroupRoot())))
	return errors.Join(errs...)
}

// LoseNode simulates the loss of a host: its kubelet, containerd and containers are SIGKILLed and
// every packet to or from its node IP and pod subnet is dropped. RestoreNode undoes it.
func (c *Cluster) LoseNode(ctx context.Context, n *Node) error {
	if err := c.cut(n, "-A"); err != nil {
		return err
	}
	return killNode(ctx, c.dir, n.Name)
}

// RestoreNode lifts the cut and starts the node's containerd and kubelet again; its images and
// pod state are where they were.
func (c *Cluster) RestoreNode(ctx context.Context, n *Node) error {
	if err := c.cut(n, "-D"); err != nil {
		return err
	}
	if err := c.startContainerd(ctx, n); err != nil {
		return err
	}
	return c.startKubelet(n)
}

// ContainerPID is the host PID of a running container's first process, as its node's containerd
// reports it. containerID is the id from the pod's status, with or without "containerd://".
func (c *Cluster) ContainerPID(ctx context.Context, node, containerID string) (int, error) {
	n, err := c.Node(node)
	if err != nil {
		return 0, err
	}
	id := strings.TrimPrefix(containerID, "containerd://")
	out, err := output(ctx, "ctr", "--address", n.socket(), "-n", "k8s.io", "tasks", "ls")
	if err != nil {
		return 0, err
	}
	// TASK PID STATUS, one task a line after the header.
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == id {
			if f[2] != "RUNNING" {
				return 0, fmt.Errorf("container %s on %s is %s", id, node, f[2])
			}
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("no task %s on %s", id, node)
}

func (c *Cluster) cut(n *Node, op string) error {
	if op == "-A" {
		if err := run("iptables", "-w", "-N", cutChain); err != nil && !strings.Contains(err.Error(), "exists") {
			return err
		}
		for _, hook := range []string{"INPUT", "OUTPUT", "FORWARD"} {
			if run("iptables", "-w", "-C", hook, "-j", cutChain) != nil {
				if err := run("iptables", "-w", "-I", hook, "-j", cutChain); err != nil {
					return err
				}
			}
		}
	}
	for _, addr := range []string{n.IP + "/32", n.PodCIDR} {
		for _, dir := range []string{"-s", "-d"} {
			if err := run("iptables", "-w", op, cutChain, dir, addr, "-j", "DROP"); err != nil {
				return fmt.Errorf("cut %s: %w", n.Name, err)
			}
		}
	}
	return nil
}
