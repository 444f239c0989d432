package webhook

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// maxBody bounds a review: the apiserver's own request limit is 3 MiB.
const maxBody = 8 << 20

// Handler serves /mutate (AdmissionReviews), /healthz and /metrics.
type Handler struct {
	cfg       Config
	log       *slog.Logger
	reviews   *prometheus.CounterVec
	durations prometheus.Histogram
	metrics   http.Handler
}

// NewHandler registers the webhook's metrics on reg, which /metrics serves.
func NewHandler(cfg Config, log *slog.Logger, reg *prometheus.Registry) (*Handler, error) {
	h := &Handler{
		cfg: cfg,
		log: log,
		reviews: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "shoal", Subsystem: "webhook", Name: "admissions_total",
			Help: "Admission reviews answered, by result: injected, unchanged (another StatefulSet's pod or one already injected), refused (a pod that cannot be injected), bad_request.",
		}, []string{"result"}),
		durations: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "shoal", Subsystem: "webhook", Name: "admission_duration_seconds",
			Help:    "Time to answer one admission review.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 8),
		}),
		metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
	}
	for _, c := range []prometheus.Collector{h.reviews, h.durations} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register webhook metrics: %w", err)
		}
	}
	return h, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/mutate":
		h.mutate(w, r)
	case "/healthz":
		_, _ = io.WriteString(w, "ok\n")
	case "/metrics":
		h.metrics.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (h *Handler) mutate(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { h.durations.Observe(time.Since(start).Seconds()) }()
	if r.Method != http.MethodPost {
		h.badRequest(w, http.StatusMethodNotAllowed, "POST an AdmissionReview")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		h.badRequest(w, http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q, want application/json", ct))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		h.badRequest(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("read the review: %v", err))
		return
	}
	req, pod, err := DecodeReview(body)
	if err != nil && req == nil {
		h.badRequest(w, http.StatusBadRequest, err.Error())
		return
	}
	result, refusal := Result{}, err
	if err == nil {
		result, refusal = Inject(pod, h.cfg)
	}
	out, err := Response(req.UID, result.Patch, refusal)
	if err != nil {
		h.log.Error("encode the answer", "uid", req.UID, "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	switch {
	case errors.Is(refusal, ErrBadReview):
		h.reviews.WithLabelValues("bad_request").Inc()
		h.log.Warn("refused a review", "uid", req.UID, "namespace", req.Namespace, "name", req.Name, "reason", refusal)
	case refusal != nil:
		h.reviews.WithLabelValues("refused").Inc()
		h.log.Warn("refused a pod", "uid", req.UID, "namespace", req.Namespace, "pod", pod.Name, "reason", refusal)
	case len(result.Patch) > 0:
		h.reviews.WithLabelValues("injected").Inc()
		h.log.Info("injected the agent", "reason", result.Reason, "uid", req.UID, "namespace", req.Namespace, "ops", len(result.Patch))
	default:
		h.reviews.WithLabelValues("unchanged").Inc()
		h.log.Debug("left a pod unchanged", "reason", result.Reason, "uid", req.UID, "namespace", req.Namespace)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

func (h *Handler) badRequest(w http.ResponseWriter, code int, msg string) {
	h.reviews.WithLabelValues("bad_request").Inc()
	h.log.Warn("bad admission request", "code", code, "reason", msg)
	http.Error(w, msg, code)
}
