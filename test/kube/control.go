package kube

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func (c *Cluster) startControlPlane(ctx context.Context) error {
	p := c.pki.path
	etcdURL := "http://" + net.JoinHostPort(ControlIP, "2379")
	peerURL := "http://" + net.JoinHostPort(ControlIP, "2380")
	if err := c.spawn("etcd", Bin("etcd"),
		"--name=rig", "--data-dir="+filepath.Join(c.dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=rig="+peerURL,
		// A throwaway test store on a disk shared with other builds: no fsync.
		"--unsafe-no-fsync", "--log-level=warn"); err != nil {
		return err
	}
	if err := c.spawn("kube-apiserver", Bin("kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address="+ControlIP, "--advertise-address="+ControlIP, "--secure-port="+strconv.Itoa(apiPort),
		// The rig writes the kubernetes Service's endpoints itself (writeAPIEndpoints).
		"--endpoint-reconciler-type=none",
		"--service-cluster-ip-range="+ServiceCIDR,
		"--tls-cert-file="+p("apiserver.crt"), "--tls-private-key-file="+p("apiserver.key"),
		"--client-ca-file="+p("ca.crt"),
		"--kubelet-client-certificate="+p("apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+p("apiserver-kubelet-client.key"),
		"--kubelet-preferred-address-types=InternalIP",
		"--service-account-issuer=https://kubernetes.default.svc."+DNSDomain,
		"--service-account-key-file="+p("sa.pub"), "--service-account-signing-key-file="+p("sa.key"),
		"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true", "--profiling=false",
		"--cert-dir="+filepath.Join(c.dir, "apiserver-certs"), "--v=1"); err != nil {
		return err
	}
	if err := c.waitAPI(ctx, 90*time.Second); err != nil {
		return err
	}
	if err := c.writeAPIEndpoints(ctx); err != nil {
		return err
	}
	if err := c.grantCoreDNS(ctx); err != nil {
		return err
	}
	if err := c.spawn("kube-controller-manager", Bin("kube-controller-manager"),
		"--kubeconfig="+p("controller-manager.kubeconfig"),
		"--authentication-kubeconfig="+p("controller-manager.kubeconfig"),
		"--authorization-kubeconfig="+p("controller-manager.kubeconfig"),
		"--bind-address="+ControlIP, "--secure-port=10257",
		// Pod CIDRs are set per kubelet, so the node IPAM controller stays off.
		"--controllers=*,-nodeipam", "--allocate-node-cidrs=false",
		"--service-account-private-key-file="+p("sa.key"), "--root-ca-file="+p("ca.crt"),
		"--use-service-account-credentials=true", "--leader-elect=false",
		"--cluster-signing-cert-file="+p("ca.crt"), "--cluster-signing-key-file="+p("ca.key"),
		// A lost node is noticed in ~20 s rather than the default 50 s.
		"--node-monitor-grace-period=20s", "--node-monitor-period=2s",
		"--v=1"); err != nil {
		return err
	}
	if err := c.spawn("kube-scheduler", Bin("kube-scheduler"),
		"--kubeconfig="+p("scheduler.kubeconfig"),
		"--authentication-kubeconfig="+p("scheduler.kubeconfig"),
		"--authorization-kubeconfig="+p("scheduler.kubeconfig"),
		"--bind-address="+ControlIP, "--secure-port=10259", "--leader-elect=false", "--v=1"); err != nil {
		return err
	}
	return c.startDNS(ctx)
}

func (c *Cluster) waitAPI(ctx context.Context, limit time.Duration) error {
	return poll(ctx, limit, "kube-apiserver /readyz", func() error {
		_, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err
	})
}

// poll retries f every 200 ms until it succeeds or limit passes, and names what it waited for.
func poll(ctx context.Context, limit time.Duration, what string, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last error
	for {
		if last = f(); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// writeAPIEndpoints points the kubernetes Service at the apiserver: the endpoint reconciler is
// off (it refuses the rig's advertise address on lo), and pods reach the API through the
// ClusterIP like anywhere else.
func (c *Cluster) writeAPIEndpoints(ctx context.Context) error {
	return poll(ctx, 30*time.Second, "the kubernetes Service", func() error {
		if _, err := c.Client.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{}); err != nil {
			return err
		}
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default", Labels: map[string]string{
				discoveryv1.LabelServiceName: "kubernetes", discoveryv1.LabelManagedBy: "shoal-kube-rig",
			}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ControlIP}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(int32(apiPort)), Protocol: ptr.To(corev1.ProtocolTCP)}},
		}
		_, err := c.Client.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	})
}

// grantCoreDNS gives the cluster DNS identity read access to what its kubernetes plugin watches.
func (c *Cluster) grantCoreDNS(ctx context.Context) error {
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "shoal-rig:coredns"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"endpoints", "services", "pods", "namespaces"}, Verbs: []string{"list", "watch"}},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
		},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "shoal-rig:coredns"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "shoal-rig:coredns"}},
	}
	if _, err := c.Client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create coredns ClusterRole: %w", err)
	}
	if _, err := c.Client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create coredns ClusterRoleBinding: %w", err)
	}
	return nil
}

// startDNS runs CoreDNS as a host process on ControlIP:53, the kubelets' clusterDNS. As a host
// process it reaches the API without the ClusterIP, and every node's pods reach it through their
// bridge gateway.
func (c *Cluster) startDNS(ctx context.Context) error {
	corefile := filepath.Join(c.dir, "Corefile")
	body := fmt.Sprintf(`.:53 {
    bind %s
    errors
    kubernetes %s in-addr.arpa ip6.arpa {
        kubeconfig %s
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 2
}
`, ControlIP, DNSDomain, c.pki.path("coredns.kubeconfig"))
	if err := os.WriteFile(corefile, []byte(body), 0o644); err != nil {
		return err
	}
	if err := c.spawn("coredns", Bin("coredns"), "-conf", corefile); err != nil {
		return err
	}
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", net.JoinHostPort(ControlIP, "53"))
	}}
	return poll(ctx, 60*time.Second, "cluster DNS to resolve kubernetes.default", func() error {
		addrs, err := r.LookupHost(ctx, "kubernetes.default.svc."+DNSDomain)
		if err == nil && (len(addrs) != 1 || addrs[0] != "10.96.0.1") {
			err = fmt.Errorf("kubernetes.default resolves to %v", addrs)
		}
		return err
	})
}

// startProxy runs one kube-proxy (iptables mode) for all nodes: they share this host's network
// namespace, so one set of KUBE-* rules serves every pod. NodePorts only on the node addresses and
// no localhost NodePorts, so kube-proxy neither sets route_localnet nor installs its DROP of
// non-local traffic to 127/8, which the rest of the suite's loopback tests rely on; conntrack
// sysctls are left alone.
func (c *Cluster) startProxy(ctx context.Context) error {
	cfg := filepath.Join(c.dir, "kube-proxy.yaml")
	body := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %s
mode: iptables
clusterCIDR: %s
hostnameOverride: %s
healthzBindAddress: %s:10256
metricsBindAddress: %s:10249
nodePortAddresses: ["198.51.100.0/24"]
iptables:
  localhostNodePorts: false
  syncPeriod: 10s
  minSyncPeriod: 0s
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, c.pki.path("kube-proxy.kubeconfig"), ClusterCIDR, c.nodes[0].Name, ControlIP, ControlIP)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		return err
	}
	if err := c.spawn("kube-proxy", Bin("kube-proxy"), "--config="+cfg, "--v=1"); err != nil {
		return err
	}
	return poll(ctx, 60*time.Second, "kube-proxy to program the kubernetes Service", func() error {
		out, err := output(ctx, "iptables", "-w", "-t", "nat", "-S", "KUBE-SERVICES")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "10.96.0.1/32") {
			return errors.New("no rule for 10.96.0.1 yet")
		}
		return nil
	})
}

func (c *Cluster) waitNodesReady(ctx context.Context, limit time.Duration) error {
	return poll(ctx, limit, "every node Ready", func() error {
		nodes, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		if ready != len(c.nodes) {
			return fmt.Errorf("%d of %d nodes Ready", ready, len(c.nodes))
		}
		return nil
	})
}

// waitDefaultServiceAccount waits for the controller-manager's ServiceAccount controller: pods
// cannot be created in a namespace before its default ServiceAccount exists.
func (c *Cluster) waitDefaultServiceAccount(ctx context.Context) error {
	return poll(ctx, 60*time.Second, "the default ServiceAccount", func() error {
		_, err := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}

// createLocalPVs makes a WaitForFirstConsumer StorageClass of pre-made local volumes, n per node:
// there is no dynamic provisioner, and StatefulSets' claims bind to these on the node scheduled.
func (c *Cluster) createLocalPVs(ctx context.Context, n int) error {
	sc := &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: StorageClass},
		Provisioner:       "kubernetes.io/no-provisioner",
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimRetain),
	}
	if _, err := c.Client.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create StorageClass: %w", err)
	}
	for _, node := range c.nodes {
		for i := 1; i <= n; i++ {
			name := fmt.Sprintf("%s-pv-%d", node.Name, i)
			path := filepath.Join(node.dir, "pv", name)
			if err := os.MkdirAll(path, 0o777); err != nil {
				return err
			}
			if err := os.Chmod(path, 0o777); err != nil { // any uid the pod runs as may write
				return err
			}
			pv := &corev1.PersistentVolume{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: corev1.PersistentVolumeSpec{
					Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")},
					AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
					StorageClassName:              StorageClass,
					PersistentVolumeSource:        corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: path}},
					NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
						MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{node.Name}}},
					}}}},
				},
			}
			if _, err := c.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("create PersistentVolume %s: %w", name, err)
			}
		}
	}
	return nil
}
