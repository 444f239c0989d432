// Package kube runs a real Kubernetes cluster on this machine for tests and demos: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, cluster DNS (CoreDNS) and kube-proxy
// as host processes, and three nodes, each a kubelet with its own containerd, runc, bridge CNI,
// node IP and pod subnet. Binaries and images are built by `make deps` (test/rig/install.sh kube)
// into $SHOAL_CACHE/kube-<version>; nothing is pulled from the network.
//
// One cluster runs at a time per machine (kubelets share a few fixed host paths); Start first
// removes whatever an earlier, crashed run left, and Stop removes every process, mount, address,
// bridge, cgroup and iptables chain the rig made and restores the sysctls it found.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Version is the Kubernetes release the rig runs; the cache directory is keyed by it.
const Version = "v1.37.2"

// Fixed addresses: the control plane and cluster DNS listen on ControlIP, node i (1-based) on
// 198.51.100.1i; all are /32s on lo (documentation range, never routed off this host). The kubelet
// refuses loopback node IPs, which these are not.
const (
	ControlIP   = "198.51.100.10"
	ServiceCIDR = "10.96.0.0/16"
	ClusterCIDR = "10.244.0.0/16"
	// DNSDomain is the cluster domain pods resolve Service names in.
	DNSDomain = "cluster.local"
	// StorageClass is the class of the local PersistentVolumes Start creates on every node.
	StorageClass = "shoal-local"
	apiPort      = 6443
	cgroupParent = "shoal-kube"
	bridgePrefix = "shoalk"
)

// Image names imported into every node, as the chart's test values use them.
const (
	ShoalImage   = "shoal.local/shoal:dev"
	MariaDBImage = "shoal.local/mariadb:10.11"
	MySQLImage   = "shoal.local/mysql:9.7"
	PauseImage   = "shoal.local/pause:3.10"
)

// DefaultDir is where a running cluster keeps its state, logs and node roots.
const DefaultDir = "/var/lib/shoal-kube"

func cacheDir() string {
	if d := os.Getenv("SHOAL_CACHE"); d != "" {
		return d
	}
	return "/var/cache/shoal-test"
}

func binDir() string   { return filepath.Join(cacheDir(), "kube-"+Version, "bin") }
func imageDir() string { return filepath.Join(cacheDir(), "kube-"+Version, "images") }

// Bin is the path of a rig binary (kubectl, helm, ...).
func Bin(name string) string { return filepath.Join(binDir(), name) }

var requiredBins = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
	"kubelet", "kube-proxy", "kubectl", "coredns", "kube-image"}

// Missing lists the binaries and images `make deps` has not built yet.
func Missing() []string {
	var m []string
	for _, b := range requiredBins {
		if _, err := os.Stat(Bin(b)); err != nil {
			m = append(m, Bin(b))
		}
	}
	for _, i := range []string{"pause.tar", "mariadb.tar", "mysql.tar"} {
		if _, err := os.Stat(filepath.Join(imageDir(), i)); err != nil {
			m = append(m, filepath.Join(imageDir(), i))
		}
	}
	return m
}

// Options of Start; the zero value is a three-node cluster in DefaultDir with every image.
type Options struct {
	Dir   string
	Nodes int // 1-9
	// NoShoalImage skips building shoal.local/shoal:dev from ./cmd/shoal (tests of the rig itself).
	NoShoalImage bool
	// ShoalImage is a tarball BuildShoalImage made earlier from the same source; empty builds
	// one while the control plane starts.
	ShoalImage string
	// PVsPerNode local PersistentVolumes of class StorageClass per node (default 4).
	PVsPerNode int
	Log        *slog.Logger
}

// Cluster is a running rig.
type Cluster struct {
	dir        string
	log        *slog.Logger
	pki        *pki
	nodes      []*Node
	lock       *os.File
	Kubeconfig string // admin (system:masters) kubeconfig
	Client     kubernetes.Interface
}

// Node is one simulated host: its kubelet, containerd and pod subnet.
type Node struct {
	Name    string
	IP      string
	PodCIDR string
	dir     string
	index   int
}

// Nodes returns the cluster's nodes in order.
func (c *Cluster) Nodes() []*Node { return c.nodes }

// Dir is the rig's state directory (logs under Dir()/logs).
func (c *Cluster) Dir() string { return c.dir }

// Start brings a cluster up and waits until every node is Ready and the default ServiceAccount
// exists. On failure it removes what it started.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	if m := Missing(); len(m) > 0 {
		return nil, fmt.Errorf("kube rig not built (run make deps): missing %v", m)
	}
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Nodes < 1 || o.Nodes > 9 {
		return nil, fmt.Errorf("nodes %d: want 1-9", o.Nodes)
	}
	if o.PVsPerNode == 0 {
		o.PVsPerNode = 4
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(o.Dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	// Test packages run in parallel; each that needs the rig waits its turn for the one cluster.
	err = poll(ctx, 24*time.Hour, "the kube rig lock "+lock.Name(), func() error {
		return syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	})
	if err != nil {
		lock.Close()
		return nil, err
	}
	c := &Cluster{dir: o.Dir, log: o.Log, lock: lock}
	for i := 1; i <= o.Nodes; i++ {
		c.nodes = append(c.nodes, newNode(o.Dir, i))
	}
	start := time.Now()
	if err := teardown(ctx, o.Dir, c.log); err != nil {
		c.unlock()
		return nil, fmt.Errorf("clean up an earlier run: %w", err)
	}
	if err := c.start(ctx, o); err != nil {
		c.log.Error("kube rig start failed; tearing down", "err", err, "logs", filepath.Join(o.Dir, "logs"))
		if terr := c.Stop(context.WithoutCancel(ctx)); terr != nil {
			err = errors.Join(err, fmt.Errorf("teardown: %w", terr))
		}
		return nil, err
	}
	c.log.Info("kube rig up", "nodes", len(c.nodes), "took", time.Since(start).Round(time.Millisecond), "kubeconfig", c.Kubeconfig)
	return c, nil
}

// newNode is node i (1-based) of a rig in dir: its name, addresses and state directory are fixed
// by i, so a later process finds the same node from the directory alone.
func newNode(dir string, i int) *Node {
	name := "node-" + strconv.Itoa(i)
	return &Node{
		Name: name, IP: "198.51.100.1" + strconv.Itoa(i),
		PodCIDR: "10.244." + strconv.Itoa(i) + ".0/24", dir: filepath.Join(dir, name), index: i,
	}
}

// Attach returns the rig another process started in dir (`kube lose-node`): its nodes and state
// directory, enough to lose and restore a node. It has no API client and does not hold the
// rig's lock.
func Attach(dir string) (*Cluster, error) {
	if dir == "" {
		dir = DefaultDir
	}
	if _, err := os.Stat(KubeconfigPath(dir)); err != nil {
		return nil, fmt.Errorf("no rig running in %s: %w", dir, err)
	}
	c := &Cluster{dir: dir, log: slog.New(slog.DiscardHandler), pki: &pki{dir: filepath.Join(dir, "pki")}, Kubeconfig: KubeconfigPath(dir)}
	for i := 1; i <= 9; i++ {
		n := newNode(dir, i)
		if _, err := os.Stat(n.dir); err != nil {
			break
		}
		c.nodes = append(c.nodes, n)
	}
	return c, nil
}

// Node is the node called name.
func (c *Cluster) Node(name string) (*Node, error) {
	i := slices.IndexFunc(c.nodes, func(n *Node) bool { return n.Name == name })
	if i < 0 {
		return nil, fmt.Errorf("no node %q in this rig", name)
	}
	return c.nodes[i], nil
}

func (c *Cluster) unlock() {
	if c.lock != nil {
		c.lock.Close()
		c.lock = nil
	}
}

// Stop kills every component and container and undoes the rig's host changes.
func (c *Cluster) Stop(ctx context.Context) error {
	defer c.unlock()
	return teardown(ctx, c.dir, c.log)
}

// Down tears down a rig started by another process (the `kube down` command).
func Down(ctx context.Context, dir string, log *slog.Logger) error {
	if dir == "" {
		dir = DefaultDir
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return teardown(ctx, dir, log)
}

var controlComponents = []string{"kube-proxy", "coredns", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"}

// teardown is idempotent and works from the directory alone, so it also cleans a crashed run.
func teardown(ctx context.Context, dir string, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var errs []error
	nodeDirs, _ := filepath.Glob(filepath.Join(dir, "node-*"))
	for _, nd := range nodeDirs {
		errs = append(errs, killNode(ctx, dir, filepath.Base(nd)))
	}
	for _, name := range controlComponents {
		errs = append(errs, killRecorded(ctx, dir, name))
	}
	errs = append(errs, unmountAll(dir))
	errs = append(errs, iptablesCleanup("KUBE-", cutChain))
	errs = append(errs, delLinks(bridgePrefix))
	for i := 0; i <= 9; i++ {
		errs = append(errs, delLoopbackAddr("198.51.100.1"+strconv.Itoa(i)))
	}
	errs = append(errs, removeCgroup(cgroupParent))
	errs = append(errs, removeHostPathsOf(dir))
	errs = append(errs, restoreSysctls(filepath.Join(dir, "sysctl.orig")))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// Only with nothing mounted below it is removing the directory safe.
	if m, err := mountsUnder(dir); err != nil || len(m) > 0 {
		return fmt.Errorf("not removing %s: mounts left %v (%v)", dir, m, err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() == ".lock" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	log.Debug("kube rig torn down", "dir", dir)
	return errors.Join(errs...)
}

// removeHostPathsOf removes what the kubelets and CNI plugins put in fixed host paths for this
// rig: /var/log/containers links into its pod logs and libcni's result cache of its networks.
func removeHostPathsOf(dir string) error {
	var errs []error
	links, _ := filepath.Glob("/var/log/containers/*")
	for _, l := range links {
		if t, err := os.Readlink(l); err == nil && len(t) > len(dir) && t[:len(dir)+1] == dir+"/" {
			errs = append(errs, os.Remove(l))
		}
	}
	cached, _ := filepath.Glob("/var/lib/cni/results/" + cniNetPrefix + "*")
	for _, f := range cached {
		errs = append(errs, os.Remove(f))
	}
	return errors.Join(errs...)
}

func (c *Cluster) start(ctx context.Context, o Options) error {
	for _, d := range []string{"logs", "pids", "etcd"} {
		if err := os.MkdirAll(filepath.Join(c.dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := saveSysctls(filepath.Join(c.dir, "sysctl.orig")); err != nil {
		return fmt.Errorf("save sysctls: %w", err)
	}
	if err := addLoopbackAddr(ControlIP); err != nil {
		return err
	}
	for _, n := range c.nodes {
		if err := addLoopbackAddr(n.IP); err != nil {
			return err
		}
	}
	type built struct {
		tar string
		err error
	}
	shoalImage := make(chan built, 1)
	switch {
	case o.NoShoalImage:
		shoalImage <- built{}
	case o.ShoalImage != "":
		shoalImage <- built{tar: o.ShoalImage}
	default:
		// Built while the control plane starts; nodes import it.
		go func() { tar, err := BuildShoalImage(ctx, c.log); shoalImage <- built{tar, err} }()
	}
	if err := c.writePKI(); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := c.startControlPlane(ctx); err != nil {
		return err
	}
	seed := []string{filepath.Join(imageDir(), "pause.tar"), filepath.Join(imageDir(), "mariadb.tar"), filepath.Join(imageDir(), "mysql.tar")}
	shoal := <-shoalImage
	if shoal.err != nil {
		return fmt.Errorf("shoal image: %w", shoal.err)
	}
	var extra []string
	if shoal.tar != "" {
		extra = append(extra, shoal.tar)
	}
	if err := c.startNodes(ctx, seed, extra); err != nil {
		return err
	}
	if err := c.startProxy(ctx); err != nil {
		return err
	}
	if err := c.waitNodesReady(ctx, 2*time.Minute); err != nil {
		return err
	}
	if err := c.createLocalPVs(ctx, o.PVsPerNode); err != nil {
		return err
	}
	return c.waitDefaultServiceAccount(ctx)
}

func (c *Cluster) writePKI() error {
	p, err := newPKI(filepath.Join(c.dir, "pki"))
	if err != nil {
		return err
	}
	c.pki = p
	svcIP := net.ParseIP("10.96.0.1")
	apiIPs := []net.IP{net.ParseIP(ControlIP), svcIP, net.ParseIP("127.0.0.1")}
	apiDNS := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + DNSDomain, "localhost"}
	if err := p.issue("apiserver", "kube-apiserver", nil, apiIPs, apiDNS); err != nil {
		return err
	}
	if err := p.serviceAccountKey(); err != nil {
		return err
	}
	// Identities the bootstrap RBAC policy knows; coredns gets its own role in startControlPlane.
	ids := []struct{ name, cn, org string }{
		{"admin", "shoal-rig-admin", "system:masters"},
		{"apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"},
		{"controller-manager", "system:kube-controller-manager", ""},
		{"scheduler", "system:kube-scheduler", ""},
		{"kube-proxy", "system:kube-proxy", ""},
		{"coredns", "shoal-rig:coredns", ""},
	}
	for _, n := range c.nodes {
		ids = append(ids, struct{ name, cn, org string }{n.Name, "system:node:" + n.Name, "system:nodes"})
	}
	server := "https://" + net.JoinHostPort(ControlIP, strconv.Itoa(apiPort))
	for _, id := range ids {
		var orgs []string
		if id.org != "" {
			orgs = []string{id.org}
		}
		if err := p.issue(id.name, id.cn, orgs, nil, nil); err != nil {
			return err
		}
		if _, err := p.kubeconfig(id.name, server); err != nil {
			return err
		}
	}
	c.Kubeconfig = p.path("admin.kubeconfig")
	// Inline data, not file paths: client-go caches TLS transports by their config, and a rig
	// started again in the same process has new keys under the same paths.
	cfg := &rest.Config{Host: server}
	for _, f := range []struct {
		dst  *[]byte
		name string
	}{{&cfg.CAData, "ca.crt"}, {&cfg.CertData, "admin.crt"}, {&cfg.KeyData, "admin.key"}} {
		if *f.dst, err = os.ReadFile(p.path(f.name)); err != nil {
			return err
		}
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	c.Client = cs
	return nil
}

// KubeconfigPath is the admin kubeconfig of a rig running in dir (for `kube kubeconfig`).
func KubeconfigPath(dir string) string {
	if dir == "" {
		dir = DefaultDir
	}
	return filepath.Join(dir, "pki", "admin.kubeconfig")
}
