package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// ErrBadReview marks a request that is not an AdmissionReview this webhook can answer; the
// caller answers 400 without a review.
var ErrBadReview = errors.New("bad admission review")

// DecodeReview reads an admission.k8s.io/v1 AdmissionReview asking to create a Pod, and the Pod.
// Anything else is an ErrBadReview naming what is wrong; the request is returned whenever it was
// readable, so that a refusal can carry its UID.
func DecodeReview(body []byte) (*admissionv1.AdmissionRequest, *corev1.Pod, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadReview, fmt.Sprintf(format, args...))
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return nil, nil, bad("not JSON of an AdmissionReview: %v", err)
	}
	if review.APIVersion != admissionv1.SchemeGroupVersion.String() || review.Kind != "AdmissionReview" {
		return nil, nil, bad("got apiVersion %q kind %q, want %s AdmissionReview", review.APIVersion, review.Kind, admissionv1.SchemeGroupVersion)
	}
	req := review.Request
	if req == nil {
		return nil, nil, bad("no request in the review")
	}
	if req.UID == "" {
		return nil, nil, bad("the request has no uid")
	}
	if req.Kind != (metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}) || req.SubResource != "" {
		return req, nil, bad("request for %s %s, want a v1 Pod (the webhook's rules select pods only)", req.Kind.String(), req.SubResource)
	}
	if req.Operation != admissionv1.Create {
		return req, nil, bad("operation %s, want CREATE", req.Operation)
	}
	raw := bytes.TrimSpace(req.Object.Raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return req, nil, bad("the request has no object")
	}
	var pod corev1.Pod
	if err := json.Unmarshal(raw, &pod); err != nil {
		return req, nil, bad("the object is not a Pod: %v", err)
	}
	if pod.Kind != "" && pod.Kind != "Pod" {
		return req, nil, bad("the object is a %s, want a Pod", pod.Kind)
	}
	// The apiserver sends the pod before it has a name when the name is generated; the request
	// has it in both cases.
	if pod.Name == "" {
		pod.Name = req.Name
	}
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace
	}
	return req, &pod, nil
}

// Response is the AdmissionReview answering the request uid: allowed with patch, or refused with reason.
func Response(uid types.UID, patch []Op, refusal error) ([]byte, error) {
	resp := &admissionv1.AdmissionResponse{UID: uid, Allowed: refusal == nil}
	if refusal != nil {
		resp.Result = &metav1.Status{Status: metav1.StatusFailure, Message: refusal.Error(), Code: 403}
	}
	if refusal == nil && len(patch) > 0 {
		b, err := json.Marshal(patch)
		if err != nil {
			return nil, fmt.Errorf("encode patch: %w", err)
		}
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = b, &pt
	}
	out := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"},
		Response: resp,
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode admission review: %w", err)
	}
	return b, nil
}
