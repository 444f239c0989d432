package webhook

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
)

func newTestHandler(t *testing.T) (*Handler, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	h, err := NewHandler(testConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	return h, reg
}

func post(h http.Handler, body []byte, contentType string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/mutate", bytes.NewReader(body))
	r.Header.Set("Content-Type", contentType)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func answer(t *testing.T, w *httptest.ResponseRecorder) *admissionv1.AdmissionResponse {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", w.Code, w.Body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil || out.Response.UID != "0b6a8d3e" {
		t.Fatalf("answer %s", w.Body)
	}
	return out.Response
}

func TestHandlerMutate(t *testing.T) {
	h, reg := newTestHandler(t)

	resp := answer(t, post(h, review(t, nil), "application/json"))
	if !resp.Allowed || resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("response %+v", resp)
	}
	var ops []Op
	if err := json.Unmarshal(resp.Patch, &ops); err != nil || len(ops) == 0 {
		t.Fatalf("patch %s: %v", resp.Patch, err)
	}
	injected := apply(t, userPod(), ops)

	// The same pod admitted again, injected already: allowed unchanged.
	again := review(t, func(r *admissionv1.AdmissionReview) {
		b, err := json.Marshal(injected)
		if err != nil {
			t.Fatal(err)
		}
		r.Request.Object.Raw = b
	})
	if resp := answer(t, post(h, again, "application/json")); !resp.Allowed || resp.Patch != nil {
		t.Fatalf("second admission: %+v", resp)
	}

	// A pod that cannot be injected: refused, saying why.
	noData := review(t, func(r *admissionv1.AdmissionReview) {
		p := userPod()
		p.Spec.Containers[0].VolumeMounts = nil
		b, _ := json.Marshal(p)
		r.Request.Object.Raw = b
	})
	if resp := answer(t, post(h, noData, "application/json")); resp.Allowed || !strings.Contains(resp.Result.Message, "/var/lib/mysql") {
		t.Fatalf("uninjectable pod: %+v", resp)
	}

	for _, tc := range []struct {
		name, method, ct string
		body             []byte
		code             int
	}{
		{"GET", http.MethodGet, "application/json", nil, http.StatusMethodNotAllowed},
		{"YAML", http.MethodPost, "application/yaml", review(t, nil), http.StatusUnsupportedMediaType},
		{"malformed", http.MethodPost, "application/json", []byte("{"), http.StatusBadRequest},
		{"too large", http.MethodPost, "application/json", bytes.Repeat([]byte(" "), maxBody+1), http.StatusRequestEntityTooLarge},
	} {
		r := httptest.NewRequest(tc.method, "/mutate", bytes.NewReader(tc.body))
		r.Header.Set("Content-Type", tc.ct)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.code {
			t.Errorf("%s: HTTP %d, want %d: %s", tc.name, w.Code, tc.code, w.Body)
		}
	}
	for result, want := range map[string]float64{"injected": 1, "unchanged": 1, "refused": 1, "bad_request": 4} {
		if got := testutil.ToFloat64(h.reviews.WithLabelValues(result)); got != want {
			t.Errorf("shoal_webhook_admissions_total{result=%q} = %v, want %v", result, got, want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "shoal_webhook_admission_duration_seconds"); err != nil || n != 1 {
		t.Errorf("duration histogram: %d, %v", n, err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if w.Code != http.StatusOK {
		t.Errorf("/healthz: %d", w.Code)
	}
}

// writePair writes a fresh self-signed key pair for name.
func writePair(t *testing.T, certFile, keyFile, name string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func servedName(t *testing.T, r *CertReloader) string {
	t.Helper()
	c, err := r.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.Subject.CommonName
}

func TestCertReloader(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if _, err := NewCertReloader(certFile, keyFile); err == nil {
		t.Fatal("no files, no error")
	}
	writePair(t, certFile, keyFile, "first")
	r, err := NewCertReloader(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := servedName(t, r); got != "first" {
		t.Fatalf("serving %s", got)
	}
	// A rotation: new files with a later modification time.
	writePair(t, certFile, keyFile, "second")
	later := time.Now().Add(time.Minute)
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
	}
	if got := servedName(t, r); got != "second" {
		t.Fatalf("after the rotation serving %s", got)
	}
	// A half-written update keeps the pair in use.
	if err := os.WriteFile(keyFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(keyFile, later.Add(time.Minute), later.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := servedName(t, r); got != "second" {
		t.Fatalf("with a broken key serving %s", got)
	}
}
