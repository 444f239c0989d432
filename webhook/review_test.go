package webhook

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func review(t testing.TB, mutate func(r *admissionv1.AdmissionReview)) []byte {
	t.Helper()
	pod, err := json.Marshal(userPod())
	if err != nil {
		t.Fatal(err)
	}
	r := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "0b6a8d3e",
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: "app", Operation: admissionv1.Create,
			Object: runtime.RawExtension{Raw: pod},
		},
	}
	if mutate != nil {
		mutate(&r)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeReview(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    []byte
		want    string // "": decodes
		withReq bool   // a refusal can name the request
	}{
		{"a pod creation", review(t, nil), "", true},
		{"not JSON", []byte(`{"apiVersion":`), "not JSON", false},
		{"empty", nil, "not JSON", false},
		{"wrong API version", review(t, func(r *admissionv1.AdmissionReview) { r.APIVersion = "admission.k8s.io/v1beta1" }), "want admission.k8s.io/v1 AdmissionReview", false},
		{"wrong kind", review(t, func(r *admissionv1.AdmissionReview) { r.Kind = "Pod" }), `kind "Pod"`, false},
		{"no request", review(t, func(r *admissionv1.AdmissionReview) { r.Request = nil }), "no request", false},
		{"no uid", review(t, func(r *admissionv1.AdmissionReview) { r.Request.UID = "" }), "no uid", false},
		{"a Deployment", review(t, func(r *admissionv1.AdmissionReview) {
			r.Request.Kind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
		}), "want a v1 Pod", true},
		{"a subresource", review(t, func(r *admissionv1.AdmissionReview) { r.Request.SubResource = "binding" }), "want a v1 Pod", true},
		{"an update", review(t, func(r *admissionv1.AdmissionReview) { r.Request.Operation = admissionv1.Update }), "want CREATE", true},
		{"no object", review(t, func(r *admissionv1.AdmissionReview) { r.Request.Object.Raw = nil }), "no object", true},
		{"object not a pod", review(t, func(r *admissionv1.AdmissionReview) { r.Request.Object.Raw = []byte(`{"spec":[1]}`) }), "not a Pod", true},
		{"object of another kind", review(t, func(r *admissionv1.AdmissionReview) {
			r.Request.Object.Raw = []byte(`{"kind":"Secret","apiVersion":"v1"}`)
		}), "is a Secret", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, pod, err := DecodeReview(tc.body)
			if tc.want == "" {
				if err != nil || pod == nil || pod.Name != "db-1" {
					t.Fatalf("got pod %v, err %v", pod, err)
				}
				return
			}
			if !errors.Is(err, ErrBadReview) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a bad review saying %q", err, tc.want)
			}
			if (req != nil) != tc.withReq || pod != nil {
				t.Fatalf("request %v pod %v with the refusal", req, pod)
			}
		})
	}
}

// FuzzDecodeReview: any body gives a pod or a bad-review error, never a panic, and a decoded
// pod always comes with a request to answer.
func FuzzDecodeReview(f *testing.F) {
	f.Add(review(f, nil))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","object":null}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":[{"name":"a"}]}}}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"kind":"AdmissionReview"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, pod, err := DecodeReview(body)
		if err != nil {
			if !errors.Is(err, ErrBadReview) || pod != nil {
				t.Fatalf("error %v with pod %v", err, pod)
			}
			return
		}
		if req == nil || req.UID == "" || pod == nil {
			t.Fatalf("decoded without a request or pod: %v %v", req, pod)
		}
		// Whatever decoded must be answerable without a panic either.
		if _, err := Inject(pod, testConfig()); err != nil && err.Error() == "" {
			t.Fatal("a refusal without a reason")
		}
	})
}
