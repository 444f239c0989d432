package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/shoal-db/shoal/agent"
	"github.com/shoal-db/shoal/agent/ha"
)

// Config is what New needs.
type Config struct {
	Target
	// Pod is this agent's own pod: Events about its permissions go there.
	Pod string
	// Reporter names this agent in the Events it writes (its member id).
	Reporter string
	Log      *slog.Logger
	Registry prometheus.Registerer
	// Heal, when set, has the leader delete failed members' pods as ha.Heal decides
	// (kubernetes.heal.enabled), each once Raft confirms a majority follows it.
	Heal *ha.HealPolicy
	// Roll, when set, has the leader roll the members' OnDelete StatefulSet after an update as
	// ha.Roll decides (kubernetes.roll.enabled), asking Raft for its switchover.
	Roll *ha.RollPolicy
	Raft Raft
}

// Publisher writes a cluster view into the Kubernetes API; it implements agent.Publisher and,
// for /readyz, agent.ReadinessCheck. Every agent runs one and watches the API, so a new leader
// writes from a warm cache in the pass that commits a failover; only the leader writes.
type Publisher struct {
	cfg    Config
	client kubernetes.Interface
	log    *slog.Logger

	factory informers.SharedInformerFactory
	synced  []cache.InformerSynced
	// pods and slices are the informers' caches overlaid with this agent's own writes.
	pods, slices cache.MutationCache

	writes *prometheus.CounterVec
	stale  prometheus.Counter
	healer *healer // nil unless cfg.Heal is set
	roller *roller // nil unless cfg.Roll is set

	// Touched only by Publish, which runs on one goroutine.
	services map[string]*corev1.Service

	mu        sync.Mutex
	access    string // the permissions the access check found missing
	forbidden string // the last write the API server refused as forbidden
	told      string // the permission problem last told in an Event
}

// New returns a publisher writing through client. Start it before the first view comes.
func New(client kubernetes.Interface, cfg Config) (*Publisher, error) {
	if cfg.Log == nil || cfg.Registry == nil {
		return nil, errors.New("kube publisher: Log and Registry are required")
	}
	p := &Publisher{cfg: cfg, client: client, log: cfg.Log, services: map[string]*corev1.Service{},
		factory: informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(cfg.Namespace)),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shoal", Subsystem: "kubernetes", Name: "writes_total",
			Help: "Writes to the Kubernetes API by resource and verb."}, []string{"resource", "verb"}),
		stale: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "shoal", Subsystem: "kubernetes", Name: "stale_epoch_refusals_total",
			Help: "Kubernetes objects not written because they were written in a newer epoch than this agent's view."}),
	}
	for _, c := range []prometheus.Collector{p.writes, p.stale} {
		if err := cfg.Registry.Register(c); err != nil {
			return nil, fmt.Errorf("kube publisher metrics: %w", err)
		}
	}
	if (cfg.Heal != nil || cfg.Roll != nil) && cfg.Raft == nil {
		return nil, errors.New("kube publisher: healing and rolling need the Raft node")
	}
	if cfg.Heal != nil {
		p.healer = p.newHealer(client, *cfg.Heal)
		if err := p.healer.register(cfg.Registry); err != nil {
			return nil, err
		}
	}
	if cfg.Roll != nil {
		p.roller = p.newRoller(*cfg.Roll, cfg.Raft)
		if err := p.roller.register(cfg.Registry); err != nil {
			return nil, err
		}
	}
	pods := p.factory.Core().V1().Pods().Informer()
	slices := p.factory.Discovery().V1().EndpointSlices().Informer()
	p.pods, p.slices = p.overlaid(pods), p.overlaid(slices)
	p.synced = []cache.InformerSynced{pods.HasSynced, slices.HasSynced}
	return p, nil
}

// overlaid is inf's cache with this agent's own writes laid over it (Mutation), so the pass
// after a write does not write again from a cache the watch has not updated yet.
func (p *Publisher) overlaid(inf cache.SharedIndexInformer) cache.MutationCache {
	return cache.NewIntegerResourceVersionMutationCacheWithOptions(logr.FromSlogHandler(p.log.Handler()), inf.GetStore(),
		cache.MutationCacheOptions{TTL: time.Minute, IncludeAdds: true})
}

// Start runs the informers and the permission check until ctx ends.
func (p *Publisher) Start(ctx context.Context) {
	p.factory.Start(ctx.Done())
	if p.healer != nil {
		p.healer.start(ctx)
	}
	go p.checkAccessUntilGranted(ctx)
}

// Name implements agent.Publisher.
func (p *Publisher) Name() string { return "kubernetes" }

// Publish writes v if this agent leads: the slices first (clients follow them), then the
// labels, each label write followed by the Events of the change it made; then, with healing on,
// the one deletion ha.Heal decides, and with rolling on the one step ha.Roll decides.
func (p *Publisher) Publish(ctx context.Context, v agent.ClusterView) error {
	err := p.publish(ctx, v)
	if p.healer != nil && v.Record.Cluster != "" {
		err = errors.Join(err, p.heal(ctx, v))
	}
	if p.roller != nil && v.Record.Cluster != "" {
		err = errors.Join(err, p.roll(ctx, v))
	}
	return err
}

func (p *Publisher) publish(ctx context.Context, v agent.ClusterView) error {
	if !v.Leader || v.Record.Cluster == "" {
		return nil
	}
	for _, synced := range p.synced {
		if !synced() {
			return errors.New("kubernetes: informers not synced yet")
		}
	}
	plan := Desired(p.cfg.Target, v, p.current(v))
	if creates(plan) || missing(plan.Problems) {
		// Read the Services again before creating a slice: it names its Service as owner by
		// UID, and a Service recreated since (whose old slices the garbage collector took)
		// would have the new one collected at once. An update keeps its owner, so the pass
		// that moves the primary costs no read.
		p.refreshServices(ctx)
		plan = Desired(p.cfg.Target, v, p.current(v))
	}
	errs := plan.Problems
	for _, err := range errs {
		if errors.Is(err, ErrStaleEpoch) {
			p.stale.Inc()
		}
	}
	for _, w := range plan.Slices {
		if err := p.writeSlice(ctx, w); err != nil {
			errs = append(errs, err)
		}
	}
	for _, w := range plan.Pods {
		if err := p.writePod(ctx, w); err != nil {
			// Stop: a demotion that failed must not be followed by the promotion.
			errs = append(errs, err)
			break
		}
		for _, e := range w.Events {
			if err := p.emit(ctx, e); err != nil {
				errs = append(errs, err)
			}
		}
	}
	p.noteForbidden(errs)
	return errors.Join(errs...)
}

// current is the objects the plan reads: the record's members' pods, both Services and their
// slices.
func (p *Publisher) current(v agent.ClusterView) Current {
	cur := Current{Pods: map[string]*corev1.Pod{}, Services: p.services, Slices: map[string]*discoveryv1.EndpointSlice{}}
	for id := range v.Record.Members {
		if o, ok, _ := p.pods.GetByKey(p.cfg.Namespace + "/" + id); ok {
			cur.Pods[id] = o.(*corev1.Pod)
		}
	}
	for _, svc := range []string{p.cfg.PrimaryService, p.cfg.ReplicasService} {
		if o, ok, _ := p.slices.GetByKey(p.cfg.Namespace + "/" + SliceName(svc)); ok {
			cur.Slices[SliceName(svc)] = o.(*discoveryv1.EndpointSlice)
		}
	}
	return cur
}

// creates reports whether the plan creates a slice.
func creates(plan Plan) bool {
	for _, w := range plan.Slices {
		if w.Old == nil || w.Recreate {
			return true
		}
	}
	return false
}

// missing reports whether a Service was not found, so it is looked for again.
func missing(problems []error) bool {
	for _, err := range problems {
		if errors.Is(err, errNoService) {
			return true
		}
	}
	return false
}

func (p *Publisher) refreshServices(ctx context.Context) {
	for _, name := range []string{p.cfg.PrimaryService, p.cfg.ReplicasService} {
		svc, err := p.client.CoreV1().Services(p.cfg.Namespace).Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			p.services[name] = svc
		case apierrors.IsNotFound(err):
			delete(p.services, name)
		default:
			p.log.Warn("reading a service failed", "service", name, "err", err)
		}
	}
}

// writeSlice creates or updates a slice; an update carries the resourceVersion the plan read,
// so it fails if anyone wrote the slice since (a newer leader, say).
func (p *Publisher) writeSlice(ctx context.Context, w SliceWrite) error {
	api := p.client.DiscoveryV1().EndpointSlices(p.cfg.Namespace)
	var (
		got  *discoveryv1.EndpointSlice
		err  error
		verb = "update"
	)
	switch {
	case w.Old == nil || w.Recreate:
		if w.Recreate {
			rv := w.Old.ResourceVersion
			if err := api.Delete(ctx, w.Old.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}}); err != nil {
				return fmt.Errorf("kubernetes: delete endpointslice %s to change its address type: %w", w.Old.Name, err)
			}
			p.writes.WithLabelValues("endpointslices", "delete").Inc()
		}
		fresh := w.New.DeepCopy()
		fresh.ResourceVersion, fresh.UID = "", ""
		verb = "create"
		got, err = api.Create(ctx, fresh, metav1.CreateOptions{FieldManager: ManagedBy})
	default:
		got, err = api.Update(ctx, w.New, metav1.UpdateOptions{FieldManager: ManagedBy})
	}
	if err != nil {
		return fmt.Errorf("kubernetes: %s endpointslice %s: %w", verb, w.New.Name, err)
	}
	p.writes.WithLabelValues("endpointslices", verb).Inc()
	p.slices.Mutation(got)
	return nil
}

// writePod sets the pod's labels and epoch with a merge patch carrying the resourceVersion the
// plan read: the API server refuses it with a conflict if the pod changed since.
func (p *Publisher) writePod(ctx context.Context, w PodWrite) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": w.ResourceVersion,
		"labels":          w.Labels,
		"annotations":     map[string]string{AnnotationEpoch: strconv.FormatUint(w.Epoch, 10)},
	}})
	if err != nil {
		return fmt.Errorf("kubernetes: label pod %s: %w", w.Pod, err)
	}
	got, err := p.client.CoreV1().Pods(p.cfg.Namespace).Patch(ctx, w.Pod, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: ManagedBy})
	if err != nil {
		return fmt.Errorf("kubernetes: label pod %s %s=%s: %w", w.Pod, LabelRole, w.Labels[LabelRole], err)
	}
	p.writes.WithLabelValues("pods", "patch").Inc()
	p.pods.Mutation(got)
	return nil
}

// emit writes one core/v1 Event.
func (p *Publisher) emit(ctx context.Context, e Event) error {
	t := metav1.NewTime(e.At)
	ev := &corev1.Event{
		ObjectMeta:          metav1.ObjectMeta{GenerateName: e.Object.Name + ".", Namespace: p.cfg.Namespace},
		InvolvedObject:      e.Object,
		Reason:              e.Reason,
		Message:             e.Message,
		Type:                e.Type,
		Source:              corev1.EventSource{Component: "shoal", Host: p.cfg.Reporter},
		FirstTimestamp:      t,
		LastTimestamp:       t,
		Count:               1,
		ReportingController: ManagedBy,
		ReportingInstance:   p.cfg.Reporter,
	}
	if _, err := p.client.CoreV1().Events(p.cfg.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("kubernetes: event %s on %s %s: %w", e.Reason, e.Object.Kind, e.Object.Name, err)
	}
	p.writes.WithLabelValues("events", "create").Inc()
	return nil
}
