// Package webhook is shoal's mutating admission webhook: it turns the pods of a user's own MySQL
// or MariaDB StatefulSet, labelled shoal.io/inject=true, into shoal members by adding what the
// chart's StatefulSet has (the agent as a native sidecar, the member's init container, shoal's
// server settings, volumes, labels). The chart installed with injection: webhook renders the rest
// (Services, Secrets, RBAC, the agents' settings) and this webhook's Config.
//
// Inject is pure: a pod and a Config in, a JSON patch and a reason out. The Handler around it
// decodes AdmissionReviews, answers, and counts.
package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Config is what the webhook injects, rendered by the chart as JSON. Names refer to objects the
// chart created in the pods' namespace.
type Config struct {
	// StatefulSet is the user's StatefulSet whose pods are injected; also the shoal cluster's name
	// and the prefix of the member certificates (<statefulSet>-<ordinal>.crt).
	StatefulSet string `json:"statefulSet"`
	// Replicas is the number of members the chart made certificates and gossip seeds for.
	Replicas int `json:"replicas"`
	// Flavor is mysql or mariadb.
	Flavor string `json:"flavor"`
	// MySQLD is the server program, run directly (the image's entrypoint is not used).
	MySQLD string `json:"mysqld"`
	// Image and ImagePullPolicy are the agent's.
	Image           string            `json:"image"`
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy"`
	// ConfigMap holds shoal.yaml, my.cnf, init-mysql.sh and pre-stop.sh.
	ConfigMap string  `json:"configMap"`
	Secrets   Secrets `json:"secrets"`
	// ServiceAccount is bound to the agent's Role; a pod on the namespace's default account gets it.
	ServiceAccount string `json:"serviceAccount"`
	// HeadlessService publishes not-ready members: the pods' subdomain, so that the member names
	// the agents gossip with resolve before any member is Ready.
	HeadlessService string            `json:"headlessService"`
	ClusterDomain   string            `json:"clusterDomain"`
	Advertise       string            `json:"advertise"`
	MySQLPort       int32             `json:"mysqlPort"`
	ServerIDOffset  int               `json:"serverIdOffset"`
	Accounts        Accounts          `json:"accounts"`
	Ports           Ports             `json:"ports"`
	Probes          Probes            `json:"probes"`
	RunAsUser       int64             `json:"runAsUser"`
	RunAsGroup      int64             `json:"runAsGroup"`
	FSGroup         int64             `json:"fsGroup"`
	Labels          map[string]string `json:"labels"`
	// Resources are the agent container's.
	Resources corev1.ResourceRequirements `json:"resources"`
}

// Secrets names the chart's Secrets the pods mount.
type Secrets struct {
	Auth   string `json:"auth"`
	Gossip string `json:"gossip"`
	Admin  string `json:"admin"`
	TLS    string `json:"tls"`
}

// Accounts are the accounts init-mysql.sh creates in a new data dir.
type Accounts struct {
	AdminUser   string `json:"adminUser"`
	AppDatabase string `json:"appDatabase"`
	AppUser     string `json:"appUser"`
}

// Ports are the agent's.
type Ports struct {
	Gossip int32 `json:"gossip"`
	Raft   int32 `json:"raft"`
	Admin  int32 `json:"admin"`
}

// Probes tune the agent's liveness (/healthz) and readiness (/readyz) probes.
type Probes struct {
	PeriodSeconds             int32 `json:"periodSeconds"`
	TimeoutSeconds            int32 `json:"timeoutSeconds"`
	LivenessFailureThreshold  int32 `json:"livenessFailureThreshold"`
	ReadinessFailureThreshold int32 `json:"readinessFailureThreshold"`
}

// LoadConfig reads and validates a Config file; unknown keys are errors.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("webhook config: %w", err)
	}
	return ParseConfig(b)
}

// ParseConfig decodes and validates a Config; unknown keys are errors.
func ParseConfig(b []byte) (Config, error) {
	var c Config
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("webhook config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	label := func(key, v string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s: required", key))
		} else if msgs := validation.IsDNS1123Label(v); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("%s %q: %s", key, v, msgs[0]))
		}
	}
	label("statefulSet", c.StatefulSet)
	label("configMap", c.ConfigMap)
	label("secrets.auth", c.Secrets.Auth)
	label("secrets.gossip", c.Secrets.Gossip)
	label("secrets.admin", c.Secrets.Admin)
	label("secrets.tls", c.Secrets.TLS)
	label("serviceAccount", c.ServiceAccount)
	label("headlessService", c.HeadlessService)
	if c.Flavor != "mysql" && c.Flavor != "mariadb" {
		errs = append(errs, fmt.Errorf("flavor %q: want mysql or mariadb", c.Flavor))
	}
	if c.Advertise != "dns" && c.Advertise != "ip" {
		errs = append(errs, fmt.Errorf("advertise %q: want dns or ip", c.Advertise))
	}
	for key, v := range map[string]string{"mysqld": c.MySQLD, "image": c.Image, "clusterDomain": c.ClusterDomain, "accounts.adminUser": c.Accounts.AdminUser} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s: required", key))
		}
	}
	for key, p := range map[string]int32{"mysqlPort": c.MySQLPort, "ports.gossip": c.Ports.Gossip, "ports.raft": c.Ports.Raft, "ports.admin": c.Ports.Admin} {
		if p < 1 || p > 65535 {
			errs = append(errs, fmt.Errorf("%s %d: want 1-65535", key, p))
		}
	}
	if c.Probes.PeriodSeconds < 1 || c.Probes.TimeoutSeconds < 1 || c.Probes.LivenessFailureThreshold < 1 || c.Probes.ReadinessFailureThreshold < 1 {
		errs = append(errs, errors.New("probes: every value must be at least 1"))
	}
	if c.RunAsUser < 1 || c.RunAsGroup < 1 || c.FSGroup < 1 {
		errs = append(errs, errors.New("runAsUser, runAsGroup, fsGroup: required, not root"))
	}
	if c.Replicas < 1 {
		errs = append(errs, fmt.Errorf("replicas %d: want at least 1", c.Replicas))
	}
	if c.ServerIDOffset < 1 {
		errs = append(errs, fmt.Errorf("serverIdOffset %d: want at least 1 (server_id 0 cannot replicate)", c.ServerIDOffset))
	}
	if len(c.Labels) == 0 {
		errs = append(errs, errors.New("labels: required (the headless Service selects the members by them)"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("webhook config: %w", err)
	}
	return nil
}
