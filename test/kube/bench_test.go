package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/shoal-db/shoal/agent/adminapi"
	kubepub "github.com/shoal-db/shoal/agent/kube"
	"github.com/shoal-db/shoal/consensus/peertls"
	"github.com/shoal-db/shoal/consensus/record"
	"github.com/shoal-db/shoal/test/benchstat"
)

// BenchmarkPrimaryChangeOnKubernetes: the chart on the rig, per flavor, SHOAL_BENCH_RUNS rounds
// of two primary changes: the primary's mysqld SIGKILLed (a failover), and once that member
// serves again, the primary's pod deleted (its agent hands the role over). Reported, with a
// writer through the -primary Service running throughout:
//   - decided -> EndpointSlice: from the record's LastPrimaryChange (the time of the
//     observation the leader decided on, by its clock, which is this machine's) to a watch on
//     the -primary EndpointSlice seeing it name the new primary in the new epoch, for failovers
//     and for the deletions. It includes the candidate's catch-up and the Raft commit before the
//     publish, so it bounds commit -> slice from above (no timestamp of the commit itself leaves
//     the agent; agent/kube's TestFailoverLatency times publish -> watch alone);
//   - pod deleted -> first write: from the Delete call to the first write the new primary
//     acknowledged through the Service.
func BenchmarkPrimaryChangeOnKubernetes(b *testing.B) {
	for _, flavor := range []string{"mariadb", "mysql"} {
		b.Run(flavor, func(b *testing.B) {
			for range b.N {
				benchPrimaryChange(b, flavor)
			}
		})
	}
}

func benchPrimaryChange(b *testing.B, flavor string) {
	c := startForTestWith(b, Options{})
	r, primary, w, m := installLoaded(b, c, flavor)
	sw := watchSlices(b, c, releaseName+"-primary")
	admin := adminClient(b, c)

	var failover, switchover, firstWrite []time.Duration
	for i := range benchstat.Runs() {
		for _, f := range []fault{killPrimaryMySQLD, deletePrimaryPod} {
			old := r.pod(b, primary)
			begin := time.Now()
			back := f.inject(b, c, old, w)
			next := waitPrimary(b, c, r.selector, releaseName, primary)
			ip := r.pod(b, next).Status.PodIP
			rec := admin.primaryRecord(b, ip)
			if rec.Primary != next {
				b.Fatalf("%s labelled primary, the record names %s", next, rec.Primary)
			}
			seen := sw.named(b, rec.Epoch, ip)
			took := seen.Sub(rec.LastPrimaryChange)
			if f.name == killPrimaryMySQLD.name {
				failover = append(failover, took)
			} else {
				switchover = append(switchover, took)
				firstWrite = append(firstWrite, w.firstAckBy(b, next, begin).Sub(begin))
			}
			b.Logf("%s round %d: %s (%s): %s primary in epoch %d, in the slice %v after the decision; failed writes: %q",
				flavor, i+1, f.name, primary, next, rec.Epoch, took.Round(time.Millisecond), w.failuresBetween(begin, time.Now()))
			waitRejoined(b, c, primary, back)
			primary = next
		}
	}
	checkAcked(b, r, w, primary)
	m.check(b)
	benchstat.Report(b, "kube "+flavor+": failover (mysqld killed) decided -> -primary EndpointSlice seen by a watch", failover)
	benchstat.Report(b, "kube "+flavor+": switchover (primary pod deleted) decided -> -primary EndpointSlice seen by a watch", switchover)
	benchstat.Report(b, "kube "+flavor+": primary pod deleted -> first write acknowledged through the -primary Service", firstWrite)
}

// sliceWatch records every version of a Service's EndpointSlices a watch delivers, when.
type sliceWatch struct {
	mu   sync.Mutex
	seen []sliceSeen
}

type sliceSeen struct {
	at    time.Time
	epoch string
	ips   []string // ready addresses
}

func watchSlices(tb testing.TB, c *Cluster, service string) *sliceWatch {
	sw := &sliceWatch{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			wi, err := c.Client.DiscoveryV1().EndpointSlices("default").Watch(ctx,
				metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + service})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for ev := range wi.ResultChan() {
				s, ok := ev.Object.(*discoveryv1.EndpointSlice)
				if !ok || (ev.Type != watch.Added && ev.Type != watch.Modified) {
					continue
				}
				seen := sliceSeen{at: time.Now(), epoch: s.Annotations[kubepub.AnnotationEpoch]}
				for _, e := range s.Endpoints {
					if e.Conditions.Ready != nil && *e.Conditions.Ready {
						seen.ips = append(seen.ips, e.Addresses...)
					}
				}
				sw.mu.Lock()
				sw.seen = append(sw.seen, seen)
				sw.mu.Unlock()
			}
		}
	}()
	tb.Cleanup(func() {
		cancel()
		<-done
	})
	return sw
}

// named is when the watch first saw the slice of epoch name ip alone, ready; it waits for the
// watch to deliver that.
func (sw *sliceWatch) named(tb testing.TB, epoch uint64, ip string) time.Time {
	tb.Helper()
	want := strconv.FormatUint(epoch, 10)
	var at time.Time
	err := poll(tb.Context(), 30*time.Second, fmt.Sprintf("the watch to see the slice of epoch %d name %s", epoch, ip), func() error {
		sw.mu.Lock()
		defer sw.mu.Unlock()
		for _, s := range sw.seen {
			if s.epoch == want && slices.Equal(s.ips, []string{ip}) {
				at = s.at
				return nil
			}
		}
		return fmt.Errorf("%d versions seen", len(sw.seen))
	})
	if err != nil {
		tb.Fatal(err)
	}
	return at
}

// agentAdmin reads agents' status over their admin API (HTTPS, the cluster CA, the admin token).
type agentAdmin struct{ client adminapi.Client }

func adminClient(tb testing.TB, c *Cluster) agentAdmin {
	tb.Helper()
	secrets := c.Client.CoreV1().Secrets("default")
	tok, err := secrets.Get(tb.Context(), releaseName+"-admin", metav1.GetOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	ca, err := secrets.Get(tb.Context(), releaseName+"-tls", metav1.GetOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca.Data["ca.crt"]) {
		tb.Fatal("no certificate in the tls Secret's ca.crt")
	}
	return agentAdmin{adminapi.NewClient(string(tok.Data["admin.token"]), peertls.Client(&tls.Config{RootCAs: pool}), 3*time.Second)}
}

// primaryRecord is the primary record as the agent at ip holds it.
func (a agentAdmin) primaryRecord(tb testing.TB, ip string) record.Record {
	tb.Helper()
	v, err := a.client.Status(tb.Context(), net.JoinHostPort(ip, "7948"))
	if err != nil {
		tb.Fatalf("status of the agent at %s: %v", ip, err)
	}
	return v.Record
}
