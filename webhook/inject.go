package webhook

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// InjectLabel on a pod (from its StatefulSet's template) asks for the agent.
const InjectLabel = "shoal.io/inject"

// MySQLContainerAnnotation names the database server container; without it, the first container.
const MySQLContainerAnnotation = "shoal.io/mysql-container"

// AgentContainer is the injected agent's name, and the mark of an injected pod.
const AgentContainer = "shoal"

// Paths inside the containers, the same as in the chart's StatefulSet, so the chart's shoal.yaml,
// my.cnf and scripts serve both modes.
const (
	dataPath   = "/data"
	configPath = "/etc/shoal"
	myCnfPath  = "/etc/shoal/mysql/my.cnf"
	scriptsDir = "/etc/shoal/scripts"
	podCnfDir  = "/run/shoal-mysql"
	runMySQLD  = "/run/mysqld"
	saPath     = "/var/run/secrets/kubernetes.io/serviceaccount"
)

// Op is one JSON patch (RFC 6902) operation.
type Op struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// Result is what Inject decided: the patch (empty: the pod stays as it is) and why.
type Result struct {
	Patch  []Op
	Reason string
}

// ownedOptions are mysqld options shoal sets itself; a user's own would break the member.
var ownedOptions = []string{"defaults-file", "defaults-extra-file", "no-defaults", "datadir", "socket", "pid-file", "server-id", "report-host", "port"}

// Inject decides the patch that makes pod a member of cfg's cluster. A pod of another
// StatefulSet, or one already injected, gets no patch; a pod of cfg's StatefulSet that cannot be
// injected is an error, which the webhook answers with a refusal: a member running without its
// agent would be a writable server outside the cluster's fencing.
func Inject(pod *corev1.Pod, cfg Config) (Result, error) {
	if !ownedBy(pod, cfg.StatefulSet) {
		return Result{Reason: fmt.Sprintf("pod %s is not of StatefulSet %s: left as it is", pod.Name, cfg.StatefulSet)}, nil
	}
	if slices.ContainsFunc(pod.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == AgentContainer }) {
		return Result{Reason: fmt.Sprintf("pod %s already has the agent: left as it is", pod.Name)}, nil
	}
	if err := checkOrdinal(pod.Name, cfg); err != nil {
		return Result{}, err
	}
	i, err := mysqlContainer(pod)
	if err != nil {
		return Result{}, err
	}
	mysqld := pod.Spec.Containers[i]
	data, err := dataVolume(pod, mysqld)
	if err != nil {
		return Result{}, err
	}
	opts, err := userOptions(mysqld)
	if err != nil {
		return Result{}, err
	}
	if err := checkClashes(pod, mysqld); err != nil {
		return Result{}, err
	}

	out := pod.DeepCopy()
	out.Labels = mergeLabels(pod.Labels, cfg.Labels)
	// The pod's stable name under the chart's headless Service, which publishes members before
	// they are Ready (the agents find each other by these names to elect the first primary).
	out.Spec.Subdomain = cfg.HeadlessService
	out.Spec.ShareProcessNamespace = ptr(true) // the agent kills a frozen mysqld; pre-stop.sh signals the agent
	// Service links would put SHOAL_PRIMARY_SERVICE_HOST and the like in the agent's
	// environment, where every SHOAL_* variable is a setting and an unknown one an error.
	out.Spec.EnableServiceLinks = ptr(false)
	if out.Spec.ServiceAccountName == "" || out.Spec.ServiceAccountName == "default" {
		out.Spec.ServiceAccountName = cfg.ServiceAccount
		if out.Spec.DeprecatedServiceAccount != "" {
			out.Spec.DeprecatedServiceAccount = cfg.ServiceAccount
		}
	}
	if out.Spec.SecurityContext == nil {
		out.Spec.SecurityContext = &corev1.PodSecurityContext{}
	}
	if out.Spec.SecurityContext.FSGroup == nil {
		// Secret files are 0440 root:fsGroup: the agent refuses world-readable secrets.
		out.Spec.SecurityContext.FSGroup = ptr(cfg.FSGroup)
	}

	m := &out.Spec.Containers[i]
	m.Command = append([]string{cfg.MySQLD, "--defaults-file=" + myCnfPath}, opts...)
	m.Args = nil
	m.VolumeMounts = append(m.VolumeMounts, mysqlMounts(data)...)
	if m.Lifecycle == nil {
		m.Lifecycle = &corev1.Lifecycle{}
	}
	if m.Lifecycle.PreStop == nil {
		// The primary's agent hands its role over before mysqld stops.
		m.Lifecycle.PreStop = &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"/bin/sh", scriptsDir + "/pre-stop.sh"}}}
	}
	out.Spec.InitContainers = append(out.Spec.InitContainers, initContainer(cfg, *m, data), agentContainer(cfg, data))
	out.Spec.Volumes = append(out.Spec.Volumes, volumes(cfg)...)

	return Result{
		Patch:  diff(pod, out),
		Reason: fmt.Sprintf("pod %s: agent injected, member of cluster %s", pod.Name, cfg.StatefulSet),
	}, nil
}

func ownedBy(pod *corev1.Pod, sts string) bool {
	for _, o := range pod.OwnerReferences {
		if o.Kind == "StatefulSet" && o.Name == sts && o.Controller != nil && *o.Controller {
			return true
		}
	}
	return false
}

// checkOrdinal refuses a pod without a member's name (the member's identity, server_id and
// certificate come from it) or one the chart made no certificate for: its agent could not start.
func checkOrdinal(name string, cfg Config) error {
	ordinal, err := strconv.Atoi(strings.TrimPrefix(name, cfg.StatefulSet+"-"))
	if err != nil || ordinal < 0 || !strings.HasPrefix(name, cfg.StatefulSet+"-") {
		return fmt.Errorf("pod %s: not named %s-<ordinal>, as a StatefulSet's pods are", name, cfg.StatefulSet)
	}
	if ordinal >= cfg.Replicas {
		return fmt.Errorf("pod %s: the chart is installed for %d members (%s-0 to %s-%d), with no certificate for this one: upgrade it with replicas=%d or more",
			name, cfg.Replicas, cfg.StatefulSet, cfg.StatefulSet, cfg.Replicas-1, ordinal+1)
	}
	return nil
}

func mysqlContainer(pod *corev1.Pod) (int, error) {
	name, named := pod.Annotations[MySQLContainerAnnotation]
	for i, c := range pod.Spec.Containers {
		if !named || c.Name == name {
			return i, nil
		}
	}
	if named {
		return 0, fmt.Errorf("pod %s: annotation %s names container %q, which the pod does not have", pod.Name, MySQLContainerAnnotation, name)
	}
	return 0, fmt.Errorf("pod %s has no containers", pod.Name)
}

// dataVolume is the volume the database container keeps its data on: the one mounted at the
// flavor images' data dir, /var/lib/mysql.
func dataVolume(pod *corev1.Pod, c corev1.Container) (string, error) {
	for _, m := range c.VolumeMounts {
		if strings.TrimSuffix(m.MountPath, "/") == "/var/lib/mysql" && m.SubPath == "" && m.SubPathExpr == "" {
			return m.Name, nil
		}
	}
	return "", fmt.Errorf("pod %s: container %s mounts no whole volume at /var/lib/mysql, where shoal keeps the member's data", pod.Name, c.Name)
}

// userOptions are the container's own mysqld options (its command and args from the first
// option on), kept after shoal's defaults file so they still win; leading words (the program, an
// entrypoint) go, since shoal runs the server program itself.
func userOptions(c corev1.Container) ([]string, error) {
	words := append(slices.Clone(c.Command), c.Args...)
	first := slices.IndexFunc(words, func(w string) bool { return strings.HasPrefix(w, "-") })
	if first < 0 {
		return nil, nil
	}
	opts := words[first:]
	for _, o := range opts {
		name := strings.ReplaceAll(strings.TrimLeft(strings.SplitN(o, "=", 2)[0], "-"), "_", "-")
		if slices.Contains(ownedOptions, name) {
			return nil, fmt.Errorf("container %s sets mysqld option %s, which shoal sets for every member (remove it)", c.Name, o)
		}
	}
	return opts, nil
}

// checkClashes refuses a pod that already uses a name or path the injection adds: merging them
// would make an invalid pod, or one that is not what either side meant.
func checkClashes(pod *corev1.Pod, mysqld corev1.Container) error {
	for _, v := range volumes(Config{}) {
		if slices.ContainsFunc(pod.Spec.Volumes, func(u corev1.Volume) bool { return u.Name == v.Name }) {
			return fmt.Errorf("pod %s already has a volume named %s, which shoal adds", pod.Name, v.Name)
		}
	}
	for _, m := range mysqlMounts("") {
		if slices.ContainsFunc(mysqld.VolumeMounts, func(u corev1.VolumeMount) bool { return u.MountPath == m.MountPath }) {
			return fmt.Errorf("container %s already mounts %s, where shoal mounts %s", mysqld.Name, m.MountPath, m.Name)
		}
	}
	names := func(c corev1.Container) bool { return c.Name == "shoal-init" }
	if slices.ContainsFunc(pod.Spec.InitContainers, names) || slices.ContainsFunc(pod.Spec.Containers, names) {
		return fmt.Errorf("pod %s already has a container named shoal-init, which shoal adds", pod.Name)
	}
	return nil
}

func mergeLabels(own, add map[string]string) map[string]string {
	out := make(map[string]string, len(own)+len(add))
	for k, v := range own {
		out[k] = v
	}
	for k, v := range add {
		out[k] = v
	}
	return out
}

// mysqlMounts are the database container's additions: the data volume again at /data (where
// shoal.yaml and my.cnf expect the data dir), the settings, the scripts, the member's own
// settings from the init container, and the socket and pid file the agent uses.
func mysqlMounts(data string) []corev1.VolumeMount {
	return []corev1.VolumeMount{
		{Name: data, MountPath: dataPath},
		{Name: "shoal-config", MountPath: myCnfPath, SubPath: "my.cnf"},
		{Name: "shoal-config", MountPath: scriptsDir},
		{Name: "shoal-pod-cnf", MountPath: podCnfDir},
		{Name: "shoal-run-mysqld", MountPath: runMySQLD},
	}
}

func volumes(cfg Config) []corev1.Volume {
	secret := func(name, secretName string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: secretName, DefaultMode: ptr(int32(0o440)),
		}}}
	}
	empty := func(name string, medium corev1.StorageMedium) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: medium}}}
	}
	return []corev1.Volume{
		{Name: "shoal-config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: cfg.ConfigMap},
		}}},
		empty("shoal-pod-cnf", ""),
		empty("shoal-run-mysqld", corev1.StorageMediumMemory),
		empty("shoal-tmp", ""),
		secret("shoal-auth", cfg.Secrets.Auth),
		secret("shoal-gossip", cfg.Secrets.Gossip),
		secret("shoal-admin", cfg.Secrets.Admin),
		secret("shoal-tls", cfg.Secrets.TLS),
		// The agent's own API credentials: the service account admission ran before this
		// webhook and mounted its token only into the containers the pod had then.
		{Name: "shoal-kube-api", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			DefaultMode: ptr(int32(0o444)),
			Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr(int64(3607))}},
				{ConfigMap: &corev1.ConfigMapProjection{
					LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
					Items:                []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}},
				}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{
					{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}},
				}}},
			},
		}}},
	}
}

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
}

func (c Config) memberHost() string {
	return fmt.Sprintf("$(POD_NAME).%s.$(POD_NAMESPACE).svc.%s", c.HeadlessService, c.ClusterDomain)
}

// initContainer runs the chart's init-mysql.sh with the database container's image and security
// context: the member's server_id and report_host, and on an empty data dir shoal's accounts.
func initContainer(cfg Config, mysqld corev1.Container, data string) corev1.Container {
	return corev1.Container{
		Name:            "shoal-init",
		Image:           mysqld.Image,
		ImagePullPolicy: mysqld.ImagePullPolicy,
		Command:         []string{"/bin/sh", scriptsDir + "/init-mysql.sh"},
		Env: []corev1.EnvVar{
			fieldEnv("POD_NAME", "metadata.name"),
			fieldEnv("POD_NAMESPACE", "metadata.namespace"),
			{Name: "FLAVOR", Value: cfg.Flavor},
			{Name: "SERVER_ID_OFFSET", Value: fmt.Sprint(cfg.ServerIDOffset)},
			{Name: "REPORT_HOST", Value: cfg.memberHost()},
			{Name: "DATADIR", Value: dataPath + "/mysql"},
			{Name: "DEFAULTS_FILE", Value: myCnfPath},
			{Name: "POD_CNF", Value: podCnfDir + "/pod.cnf"},
			{Name: "SECRETS", Value: configPath + "/auth"},
			{Name: "ADMIN_USER", Value: cfg.Accounts.AdminUser},
			{Name: "APP_DATABASE", Value: cfg.Accounts.AppDatabase},
			{Name: "APP_USER", Value: cfg.Accounts.AppUser},
		},
		SecurityContext: mysqld.SecurityContext,
		Resources:       mysqld.Resources,
		VolumeMounts: []corev1.VolumeMount{
			{Name: data, MountPath: dataPath},
			{Name: "shoal-config", MountPath: myCnfPath, SubPath: "my.cnf"},
			{Name: "shoal-config", MountPath: scriptsDir},
			{Name: "shoal-pod-cnf", MountPath: podCnfDir},
			{Name: "shoal-auth", MountPath: configPath + "/auth"},
			{Name: "shoal-tmp", MountPath: "/tmp"},
		},
	}
}

// agentContainer is the agent as the chart runs it: a native sidecar (an init container that
// keeps running), so it starts before mysqld, watches it through restarts, and stops after it.
func agentContainer(cfg Config, data string) corev1.Container {
	host := cfg.memberHost()
	if cfg.Advertise == "ip" {
		host = "$(POD_IP)"
	}
	probe := func(path string, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: path, Port: intstr.FromString("admin"), Scheme: corev1.URISchemeHTTPS,
			}},
			PeriodSeconds:    cfg.Probes.PeriodSeconds,
			TimeoutSeconds:   cfg.Probes.TimeoutSeconds,
			FailureThreshold: failures,
		}
	}
	return corev1.Container{
		Name:            AgentContainer,
		Image:           cfg.Image,
		ImagePullPolicy: cfg.ImagePullPolicy,
		RestartPolicy:   ptr(corev1.ContainerRestartPolicyAlways),
		Command:         []string{"/shoal", "agent", "--config", configPath + "/shoal.yaml"},
		Env: []corev1.EnvVar{
			fieldEnv("POD_NAME", "metadata.name"),
			fieldEnv("POD_NAMESPACE", "metadata.namespace"),
			fieldEnv("POD_IP", "status.podIP"),
			{Name: "SHOAL_NODE_ID", Value: "$(POD_NAME)"},
			{Name: "SHOAL_MYSQL_ADVERTISE_ADDR", Value: fmt.Sprintf("%s:%d", host, cfg.MySQLPort)},
			// Raft and memberlist want an address, not a name.
			{Name: "SHOAL_GOSSIP_ADVERTISE", Value: fmt.Sprintf("$(POD_IP):%d", cfg.Ports.Gossip)},
			{Name: "SHOAL_RAFT_ADVERTISE", Value: fmt.Sprintf("$(POD_IP):%d", cfg.Ports.Raft)},
			{Name: "SHOAL_RAFT_TLS_CERT_FILE", Value: configPath + "/tls/$(POD_NAME).crt"},
			{Name: "SHOAL_RAFT_TLS_KEY_FILE", Value: configPath + "/tls/$(POD_NAME).key"},
			{Name: "SHOAL_RAFT_TLS_CA_FILE", Value: configPath + "/tls/ca.crt"},
			{Name: "SHOAL_ADMIN_TOKEN_FILE", Value: configPath + "/admin/admin.token"},
		},
		Ports: []corev1.ContainerPort{
			{Name: "gossip", ContainerPort: cfg.Ports.Gossip, Protocol: corev1.ProtocolTCP},
			{Name: "gossip-udp", ContainerPort: cfg.Ports.Gossip, Protocol: corev1.ProtocolUDP},
			{Name: "raft", ContainerPort: cfg.Ports.Raft},
			{Name: "admin", ContainerPort: cfg.Ports.Admin},
		},
		LivenessProbe:  probe("/healthz", cfg.Probes.LivenessFailureThreshold),
		ReadinessProbe: probe("/readyz", cfg.Probes.ReadinessFailureThreshold),
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                ptr(cfg.RunAsUser),
			RunAsGroup:               ptr(cfg.RunAsGroup),
			RunAsNonRoot:             ptr(true),
			AllowPrivilegeEscalation: ptr(false),
			ReadOnlyRootFilesystem:   ptr(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
		Resources: cfg.Resources,
		VolumeMounts: []corev1.VolumeMount{
			{Name: data, MountPath: dataPath},
			{Name: "shoal-config", MountPath: configPath + "/shoal.yaml", SubPath: "shoal.yaml"},
			{Name: "shoal-run-mysqld", MountPath: runMySQLD},
			{Name: "shoal-auth", MountPath: configPath + "/auth"},
			{Name: "shoal-gossip", MountPath: configPath + "/gossip"},
			{Name: "shoal-admin", MountPath: configPath + "/admin"},
			{Name: "shoal-tls", MountPath: configPath + "/tls"},
			{Name: "shoal-tmp", MountPath: "/tmp"},
			{Name: "shoal-kube-api", MountPath: saPath, ReadOnly: true},
		},
	}
}

// diff is the patch from pod to out: one add (which replaces an existing member) per field the
// injection changes, each with its whole new value.
func diff(pod, out *corev1.Pod) []Op {
	var ops []Op
	add := func(path string, old, new any) {
		if !reflect.DeepEqual(old, new) {
			ops = append(ops, Op{Op: "add", Path: path, Value: new})
		}
	}
	add("/metadata/labels", pod.Labels, out.Labels)
	add("/spec/subdomain", pod.Spec.Subdomain, out.Spec.Subdomain)
	add("/spec/shareProcessNamespace", pod.Spec.ShareProcessNamespace, out.Spec.ShareProcessNamespace)
	add("/spec/enableServiceLinks", pod.Spec.EnableServiceLinks, out.Spec.EnableServiceLinks)
	add("/spec/serviceAccountName", pod.Spec.ServiceAccountName, out.Spec.ServiceAccountName)
	add("/spec/serviceAccount", pod.Spec.DeprecatedServiceAccount, out.Spec.DeprecatedServiceAccount)
	add("/spec/securityContext", pod.Spec.SecurityContext, out.Spec.SecurityContext)
	add("/spec/containers", pod.Spec.Containers, out.Spec.Containers)
	add("/spec/initContainers", pod.Spec.InitContainers, out.Spec.InitContainers)
	add("/spec/volumes", pod.Spec.Volumes, out.Spec.Volumes)
	return ops
}

func ptr[T any](v T) *T { return &v }
