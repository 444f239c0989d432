package kube

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// userDB is the user's database server of a flavor: the rig's image and a few small-server options.
type userDB struct {
	flavor, image string
	args          []string
}

var userDBs = []userDB{
	{"mariadb", MariaDBImage, []string{"--innodb-buffer-pool-size=64M", "--innodb-log-file-size=32M", "--performance-schema=OFF", "--max-connections=100"}},
	{"mysql", MySQLImage, []string{"--innodb-buffer-pool-size=64M", "--innodb-redo-log-capacity=32M", "--mysqlx=OFF", "--performance-schema=OFF", "--max-connections=100"}},
}

// userStatefulSet is a user's own MySQL or MariaDB StatefulSet, as they would write it without
// shoal: the image, a data volume at /var/lib/mysql, a few server options; only the label
// shoal.io/inject=true asks for the agent.
func userStatefulSet(db userDB) *appsv1.StatefulSet {
	labels := map[string]string{"app": "db"}
	tmplLabels := map[string]string{"app": "db", "shoal.io/inject": "true"}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            new(int32(3)),
			ServiceName:         "db",
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: tmplLabels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: new(int64(30)),
					SecurityContext:               &corev1.PodSecurityContext{RunAsUser: new(int64(999)), RunAsGroup: new(int64(999)), FSGroup: new(int64(999))},
					Containers: []corev1.Container{{
						Name: db.flavor, Image: db.image, ImagePullPolicy: corev1.PullNever,
						Args:  db.args,
						Ports: []corev1.ContainerPort{{Name: "mysql", ContainerPort: 3306}},
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/var/lib/mysql"}},
					}},
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					StorageClassName: new(StorageClass),
					Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				},
			}},
		},
	}
}

// The chart in webhook mode on the rig, per flavor: the user's plain StatefulSet becomes a shoal
// cluster (one primary labelled and in the -primary EndpointSlice), the primary's pod deleted is
// followed and its recreation injected again; the live injected pod sent to the webhook again
// comes back unchanged; with the webhook scaled to 0, an unlabelled pod is admitted and a
// labelled one refused (failurePolicy Fail).
func TestWebhookInjection(t *testing.T) {
	for _, db := range userDBs {
		t.Run(db.flavor, func(t *testing.T) { testWebhookInjection(t, db) })
	}
}

func testWebhookInjection(t *testing.T, db userDB) {
	c := startForTestWith(t, Options{})
	ctx := t.Context()
	helm := exec.CommandContext(ctx, Bin("helm"), "--kubeconfig", c.Kubeconfig, "install", "db", "../../charts/shoal",
		"--namespace", "default", "--wait", "--timeout", "3m",
		"--set", "injection=webhook", "--set", "fullnameOverride=db", "--set", "flavor="+db.flavor,
		"--set", "agent.image.repository=shoal.local/shoal", "--set", "agent.image.tag=dev", "--set", "agent.image.pullPolicy=Never",
		"--set", "agent.log.level=debug", "--set", "webhook.log.level=debug")
	begin := time.Now()
	if out, err := helm.CombinedOutput(); err != nil {
		out2, _ := kubectl(t, c, "get", "pods", "-o", "wide")
		logs, _ := kubectl(t, c, "logs", "--tail", "30", "-l", "app.kubernetes.io/name=shoal-webhook", "--prefix")
		t.Fatalf("helm install: %v: %s\n%s\n%s", err, out, out2, logs)
	}
	t.Logf("chart in webhook mode installed, 2 webhook replicas Ready after %v", time.Since(begin).Round(time.Millisecond))

	begin = time.Now()
	if _, err := c.Client.AppsV1().StatefulSets("default").Create(ctx, userStatefulSet(db), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const selector = "app=db"
	pods := waitPodsReady(t, c, selector, 3)
	first := waitPrimary(t, c, selector, "db", "")
	t.Logf("user's StatefulSet: 3 pods injected and Ready, %s primary and in the slice after %v", first, time.Since(begin).Round(time.Millisecond))
	for _, p := range pods {
		if p.Labels["shoal.io/role"] == "" {
			t.Errorf("%s has no role label", p.Name)
		}
	}

	// The live, injected pod admitted again: the webhook answers allowed, without a patch.
	live, err := c.Client.CoreV1().Pods("default").Get(ctx, pods[1].Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	resp := admitAgain(t, c, live)
	if !resp.Allowed || len(resp.Patch) != 0 {
		t.Fatalf("second admission of %s: allowed %v, patch %s", live.Name, resp.Allowed, resp.Patch)
	}

	deletePrimaryAndRejoin(t, c, selector, "db", first)

	// The webhook gone: pods without the label never call it; labelled ones wait (Fail).
	if out, err := kubectl(t, c, "scale", "deployment/db-webhook", "--replicas=0"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	err = poll(ctx, 2*time.Minute, "no webhook pod left", func() error {
		l, err := c.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=shoal-webhook"})
		if err != nil {
			return err
		}
		if len(l.Items) > 0 {
			return fmt.Errorf("%d webhook pods", len(l.Items))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	plain := func(name string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "pause", Image: PauseImage, ImagePullPolicy: corev1.PullNever,
			}}},
		}
	}
	if _, err := c.Client.CoreV1().Pods("default").Create(ctx, plain("unrelated", nil), metav1.CreateOptions{}); err != nil {
		t.Fatalf("an unlabelled pod refused with the webhook down: %v", err)
	}
	_, err = c.Client.CoreV1().Pods("default").Create(ctx, plain("labelled", map[string]string{"shoal.io/inject": "true"}), metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "inject.shoal.io") {
		t.Fatalf("a labelled pod with the webhook down: %v, want a refusal by failurePolicy Fail", err)
	}
	t.Logf("webhook at 0 replicas: an unlabelled pod admitted; a labelled one refused: %v", err)
}

// admitAgain sends pod to the webhook as a new creation, through the API server's proxy to its
// Service, and returns the answer.
func admitAgain(t *testing.T, c *Cluster, pod *corev1.Pod) *admissionv1.AdmissionResponse {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	review, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "again", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Name:     pod.Name, Namespace: pod.Namespace, Operation: admissionv1.Create,
			Object: runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Client.CoreV1().RESTClient().Post().
		AbsPath("/api/v1/namespaces/default/services/https:db-webhook:443/proxy/mutate").
		SetHeader("Content-Type", "application/json").Body(review).DoRaw(t.Context())
	if err != nil {
		t.Fatalf("post the review: %v: %s", err, out)
	}
	var answer admissionv1.AdmissionReview
	if err := json.Unmarshal(out, &answer); err != nil || answer.Response == nil || answer.Response.UID != "again" {
		t.Fatalf("answer %s: %v", out, err)
	}
	return answer.Response
}
