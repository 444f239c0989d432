package chart

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"maps"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/shoal-db/shoal/webhook"
)

const webhookMode = "injection: webhook\n"

// webhookConfig is the injection config the chart gives the webhook, validated as the webhook
// validates it at start.
func webhookConfig(t *testing.T, m manifests) webhook.Config {
	t.Helper()
	var cm corev1.ConfigMap
	m.get(t, "ConfigMap", fullname+"-webhook", &cm)
	cfg, err := webhook.ParseConfig([]byte(cm.Data["config.json"]))
	if err != nil {
		t.Fatalf("the webhook refuses the chart's config: %v", err)
	}
	return cfg
}

func TestWebhookModeRenders(t *testing.T) {
	m := mustRender(t, valuesFile(t, webhookMode))
	if _, ok := m["StatefulSet/"+fullname]; ok {
		t.Fatal("webhook mode renders a StatefulSet: the user's own is the cluster")
	}
	for key, o := range m {
		into, apiVersion := typed(o.Kind)
		switch o.Kind {
		case "Deployment":
			into, apiVersion = &appsv1.Deployment{}, "apps/v1"
		case "MutatingWebhookConfiguration":
			into, apiVersion = &admissionregistrationv1.MutatingWebhookConfiguration{}, "admissionregistration.k8s.io/v1"
		}
		if into == nil || o.APIVersion != apiVersion {
			t.Errorf("%s: unexpected kind or apiVersion %s", key, o.APIVersion)
			continue
		}
		m.get(t, o.Kind, o.Metadata.Name, into)
	}
	webhookConfig(t, m)

	var d appsv1.Deployment
	m.get(t, "Deployment", fullname+"-webhook", &d)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("webhook replicas %s, want 2", ptrString(d.Spec.Replicas))
	}
	c := d.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Command, "webhook") || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("webhook container: command %q, readiness %+v", c.Command, c.ReadinessProbe)
	}
	// The members' Services and PDB must not take the webhook's pods for members.
	webhookPods := labels.Set(d.Spec.Template.Labels)
	var headless corev1.Service
	m.get(t, "Service", fullname+"-headless", &headless)
	if labels.SelectorFromSet(headless.Spec.Selector).Matches(webhookPods) {
		t.Error("the headless Service selects the webhook's pods")
	}
	var pdb policyv1.PodDisruptionBudget
	m.get(t, "PodDisruptionBudget", fullname, &pdb)
	if sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err != nil || sel.Matches(webhookPods) {
		t.Errorf("the members' PDB selects the webhook's pods (%v)", err)
	}
	var wpdb policyv1.PodDisruptionBudget
	m.get(t, "PodDisruptionBudget", fullname+"-webhook", &wpdb)
	if sel, err := metav1.LabelSelectorAsSelector(wpdb.Spec.Selector); err != nil || !sel.Matches(webhookPods) {
		t.Errorf("the webhook's PDB does not select its pods (%v)", err)
	}
	// ... and the injected members are the ones they select.
	if !labels.SelectorFromSet(headless.Spec.Selector).Matches(labels.Set(webhookConfig(t, m).Labels)) {
		t.Error("the headless Service does not select the labels the webhook gives the members")
	}

	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	m.get(t, "MutatingWebhookConfiguration", "shoal-inject."+namespace+"."+fullname, &mwc)
	if len(mwc.Webhooks) != 1 {
		t.Fatalf("%d webhooks", len(mwc.Webhooks))
	}
	w := mwc.Webhooks[0]
	if w.FailurePolicy == nil || *w.FailurePolicy != admissionregistrationv1.Fail {
		t.Errorf("failurePolicy %s, want Fail (a labelled pod never starts without its agent)", ptrString(w.FailurePolicy))
	}
	if w.ObjectSelector == nil || w.ObjectSelector.MatchLabels[webhook.InjectLabel] != "true" || len(w.ObjectSelector.MatchExpressions) > 0 {
		t.Errorf("objectSelector %+v: want only shoal.io/inject=true pods, so the webhook down holds up no other pod", w.ObjectSelector)
	}
	if w.NamespaceSelector == nil || w.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != namespace {
		t.Errorf("namespaceSelector %+v: want the release's namespace", w.NamespaceSelector)
	}
	if len(w.Rules) != 1 || !slices.Equal(w.Rules[0].Operations, []admissionregistrationv1.OperationType{admissionregistrationv1.Create}) ||
		!slices.Equal(w.Rules[0].Resources, []string{"pods"}) {
		t.Errorf("rules %+v: want pod creations only", w.Rules)
	}
	if w.SideEffects == nil || *w.SideEffects != admissionregistrationv1.SideEffectClassNone {
		t.Error("sideEffects: want None (dry runs must be able to call it)")
	}

	// The API server reaches the Service by name and checks the certificate with the caBundle.
	svc := w.ClientConfig.Service
	if svc == nil || svc.Name != fullname+"-webhook" || svc.Namespace != namespace || svc.Path == nil || *svc.Path != "/mutate" {
		t.Fatalf("clientConfig %+v", w.ClientConfig)
	}
	var s corev1.Secret
	m.get(t, "Secret", fullname+"-webhook-tls", &s)
	cert := parseCert(t, s.Data["tls.crt"])
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(w.ClientConfig.CABundle) {
		t.Fatal("caBundle holds no certificate")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: svc.Name + "." + namespace + ".svc"}); err != nil {
		t.Errorf("the webhook's certificate does not verify as the API server checks it: %v", err)
	}
}

func parseCert(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("no PEM in %q", b)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWebhookCertManager(t *testing.T) {
	m := mustRender(t, valuesFile(t, webhookMode+"webhook: {certManager: {enabled: true, issuerRef: {name: ca, kind: ClusterIssuer}}}"))
	if _, ok := m["Secret/"+fullname+"-webhook-tls"]; ok {
		t.Error("the chart renders the serving Secret that cert-manager owns")
	}
	if _, ok := m["Certificate/"+fullname+"-webhook"]; !ok {
		t.Fatalf("no Certificate; have %v", m.keys())
	}
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	m.get(t, "MutatingWebhookConfiguration", "shoal-inject."+namespace+"."+fullname, &mwc)
	if got := mwc.Annotations["cert-manager.io/inject-ca-from"]; got != namespace+"/"+fullname+"-webhook" {
		t.Errorf("inject-ca-from %q", got)
	}
	if len(mwc.Webhooks[0].ClientConfig.CABundle) != 0 {
		t.Error("a caBundle beside cert-manager's injector")
	}
}

func TestWebhookBadValuesRefused(t *testing.T) {
	for _, c := range []struct{ values, want string }{
		{"injection: operator", "injection"},
		{webhookMode + "webhook: {failurePolicy: Sometimes}", "failurePolicy"},
		{webhookMode + "webhook: {replicas: 0}", "replicas"},
		{webhookMode + "webhook: {certManager: {enabled: true}}", "webhook.certManager.enabled needs webhook.certManager.issuerRef.name"},
		{webhookMode + "webhook: {certManager: {enabled: true, issuerRef: {name: x, kind: Vault}}}", "kind"},
	} {
		t.Run(c.values, func(t *testing.T) {
			t.Parallel()
			_, err := render(t, valuesFile(t, c.values))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("values %q: %v, want a refusal naming %q", c.values, err, c.want)
			}
		})
	}
}

func TestWebhookModeLint(t *testing.T) {
	out, err := helm(t, "lint", "--strict", "--kube-version", kubeVersion, chartDir(t), "--values", valuesFile(t, webhookMode))
	if err != nil || strings.Contains(out, "[WARNING]") {
		t.Fatalf("lint is not clean: %v\n%s", err, out)
	}
}

// The webhook makes of a user's plain pod what the chart's own StatefulSet runs: the same agent
// (environment as the kubelet resolves it, ports, probes, files at the same paths), the same
// init step, the same server command.
func TestInjectedPodMatchesChartPod(t *testing.T) {
	side := mustRender(t, valuesFile(t, "storage: {type: persistentVolumeClaim}"))
	cfg := webhookConfig(t, mustRender(t, valuesFile(t, webhookMode)))
	spec := statefulSet(t, side).Spec.Template.Spec

	user := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fullname + "-0", Namespace: namespace,
			Labels:          map[string]string{"app": "db", webhook.InjectLabel: "true"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: fullname, Controller: new(true)}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "mariadb", Image: "docker.io/library/mariadb:11.8",
			VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/var/lib/mysql"}},
		}}},
	}
	res, err := webhook.Inject(user, cfg)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(user)
	ops, _ := json.Marshal(res.Patch)
	patch, err := jsonpatch.DecodePatch(ops)
	if err != nil {
		t.Fatal(err)
	}
	doc, err = patch.Apply(doc)
	if err != nil {
		t.Fatal(err)
	}
	var got corev1.Pod
	if err := json.Unmarshal(doc, &got); err != nil {
		t.Fatal(err)
	}

	p := newPod(t, side, 0)
	pairs := []struct{ chart, injected *corev1.Container }{
		{container(t, spec.InitContainers, "shoal"), container(t, got.Spec.InitContainers, webhook.AgentContainer)},
		{container(t, spec.InitContainers, "init-mysql"), container(t, got.Spec.InitContainers, "shoal-init")},
	}
	for _, pc := range pairs {
		if a, b := p.env(t, pc.chart), p.env(t, pc.injected); !maps.Equal(a, b) {
			t.Errorf("%s: environment\n chart    %v\n injected %v", pc.injected.Name, a, b)
		}
		if !slices.Equal(pc.chart.Command, pc.injected.Command) {
			t.Errorf("%s: command %q, the chart's %q", pc.injected.Name, pc.injected.Command, pc.chart.Command)
		}
		// Every path the chart's container sees, the injected one sees too.
		for _, vm := range pc.chart.VolumeMounts {
			if !slices.ContainsFunc(pc.injected.VolumeMounts, func(o corev1.VolumeMount) bool {
				return o.MountPath == vm.MountPath && o.SubPath == vm.SubPath
			}) {
				t.Errorf("%s: nothing mounted at %s", pc.injected.Name, vm.MountPath)
			}
		}
	}
	agent, chartAgent := pairs[0].injected, pairs[0].chart
	if !jsonEqual(t, agent.Ports, chartAgent.Ports) || !jsonEqual(t, agent.LivenessProbe, chartAgent.LivenessProbe) ||
		!jsonEqual(t, agent.ReadinessProbe, chartAgent.ReadinessProbe) || !jsonEqual(t, agent.RestartPolicy, chartAgent.RestartPolicy) {
		t.Errorf("agent ports, probes or restart policy differ from the chart's: %+v %+v %+v, the chart's %+v %+v %+v",
			agent.Ports, agent.ReadinessProbe, agent.LivenessProbe, chartAgent.Ports, chartAgent.ReadinessProbe, chartAgent.LivenessProbe)
	}
	mysqld := container(t, got.Spec.Containers, "mariadb")
	if chart := container(t, spec.Containers, "mysqld"); !slices.Equal(mysqld.Command, chart.Command) || !jsonEqual(t, mysqld.Lifecycle, chart.Lifecycle) {
		t.Errorf("server command %q preStop %+v, the chart's %q %+v", mysqld.Command, mysqld.Lifecycle, chart.Command, chart.Lifecycle)
	}
	for _, v := range got.Spec.Volumes {
		if v.Secret != nil {
			if i := slices.IndexFunc(spec.Volumes, func(c corev1.Volume) bool { return c.Secret != nil && c.Secret.SecretName == v.Secret.SecretName }); i < 0 {
				t.Errorf("volume %s mounts Secret %s, which the chart's pod does not", v.Name, v.Secret.SecretName)
			}
		}
	}
	if got.Spec.Subdomain != fullname+"-headless" || got.Spec.ServiceAccountName != spec.ServiceAccountName {
		t.Errorf("subdomain %q service account %q", got.Spec.Subdomain, got.Spec.ServiceAccountName)
	}
	if got.Spec.SecurityContext == nil || !jsonEqual(t, got.Spec.SecurityContext.FSGroup, spec.SecurityContext.FSGroup) {
		t.Errorf("fsGroup %+v, the chart's %s", got.Spec.SecurityContext, ptrString(spec.SecurityContext.FSGroup))
	}
}

func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	x, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(x) == string(y)
}

// The webhook behind a real API server: the chart installed in webhook mode (its serving
// certificate kept by an upgrade), the registration pointed at an in-process webhook with the
// chart's injection config. A labelled pod of the StatefulSet is created injected, valid for the
// API server (service account admission included); the injected pod created again comes back as
// it was; with the webhook gone, an unlabelled pod is admitted and a labelled one refused.
func TestWebhookOnAPIServer(t *testing.T) {
	s := startAPIServer(t)
	values := valuesFile(t, webhookMode)
	notes := s.helm(t, "install", release, chartDir(t), "--namespace", namespace, "--create-namespace", "--values", values)
	if !strings.Contains(notes, "shoal.io/inject=true") || !strings.Contains(notes, "must be named "+fullname) {
		t.Errorf("the release notes do not say what the user's StatefulSet needs:\n%s", notes)
	}
	before, _ := s.secret(t, fullname+"-webhook-tls")
	s.helm(t, "upgrade", release, chartDir(t), "--namespace", namespace, "--values", values)
	after, _ := s.secret(t, fullname+"-webhook-tls")
	for _, k := range []string{"ca.crt", "tls.crt", "tls.key"} {
		if len(before.Data[k]) == 0 || !bytes.Equal(before.Data[k], after.Data[k]) {
			t.Errorf("webhook secret %s not kept by the upgrade", k)
		}
	}

	var cm corev1.ConfigMap
	if _, err := s.do("GET", "/api/v1/namespaces/"+namespace+"/configmaps/"+fullname+"-webhook", nil, &cm); err != nil {
		t.Fatal(err)
	}
	cfg, err := webhook.ParseConfig([]byte(cm.Data["config.json"]))
	if err != nil {
		t.Fatal(err)
	}
	h, err := webhook.NewHandler(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(h)
	defer srv.Close()
	mwcPath := "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/shoal-inject." + namespace + "." + fullname
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	if _, err := s.do("GET", mwcPath, nil, &mwc); err != nil {
		t.Fatal(err)
	}
	// The API server here has no nodes, so no Service reaches a pod: call the webhook by URL.
	url := srv.URL + "/mutate"
	mwc.Webhooks[0].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url,
		CABundle: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})}
	if _, err := s.do("PUT", mwcPath, mwc, nil); err != nil {
		t.Fatal(err)
	}

	user := func(name string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: fullname, UID: "0c9c5f7e", Controller: new(true)}}},
			Spec: corev1.PodSpec{
				SecurityContext: &corev1.PodSecurityContext{RunAsUser: new(int64(999))},
				Containers: []corev1.Container{{
					Name: "mariadb", Image: "docker.io/library/mariadb:11.8", Args: []string{"--max-connections=100"},
					VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/var/lib/mysql"}},
				}},
				Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			}}
	}
	podsPath := "/api/v1/namespaces/" + namespace + "/pods"
	// What the controller manager, not run here, makes in every namespace.
	defaultSA := corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	if _, err := s.do("POST", "/api/v1/namespaces/"+namespace+"/serviceaccounts", defaultSA, nil); err != nil {
		t.Fatal(err)
	}
	var created corev1.Pod
	if _, err := s.do("POST", podsPath, user(fullname+"-0", map[string]string{"app": "db", webhook.InjectLabel: "true"}), &created); err != nil {
		t.Fatalf("the API server refused the injected pod: %v", err)
	}
	if got := names(created.Spec.InitContainers); !slices.Equal(got, []string{"shoal-init", webhook.AgentContainer}) {
		t.Fatalf("init containers %v", got)
	}
	if created.Spec.ServiceAccountName != fullname || created.Spec.Subdomain != fullname+"-headless" {
		t.Errorf("service account %q subdomain %q", created.Spec.ServiceAccountName, created.Spec.Subdomain)
	}

	// The injected pod admitted again (under another name: the first one exists): nothing added.
	again := created.DeepCopy()
	again.ObjectMeta = metav1.ObjectMeta{Name: fullname + "-1", Labels: created.Labels, OwnerReferences: created.OwnerReferences}
	again.Spec.NodeName = ""
	var second corev1.Pod
	if _, err := s.do("POST", podsPath, again, &second); err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(t, second.Spec, created.Spec) || !maps.Equal(second.Labels, created.Labels) {
		t.Errorf("the second admission changed the pod:\n%+v\n%+v", second.Spec, created.Spec)
	}

	srv.Close()
	if _, err := s.do("POST", podsPath, user("plain", nil), nil); err != nil {
		t.Errorf("an unlabelled pod refused with the webhook down: %v", err)
	}
	_, err = s.do("POST", podsPath, user(fullname+"-2", map[string]string{webhook.InjectLabel: "true"}), nil)
	if err == nil || !strings.Contains(err.Error(), "inject.shoal.io") {
		t.Errorf("a labelled pod with the webhook down: %v, want a refusal by failurePolicy Fail", err)
	}
}
