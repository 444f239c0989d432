package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "shoal.yaml", "cluster: orders\nha:\n  lease: 5s\n  tick: 200ms\nmysql:\n  addr: 10.0.0.1:3306\n", 0o600)
	env := []string{"SHOAL_HA_LEASE=6s", "SHOAL_MYSQL_ADDR=10.0.0.2:3306", "PATH=/bin", "SHOAL_CACHE=/x", "SHOAL_MEMBERSHIP_REMOVE_AFTER=30m"}
	c, err := Load(file, env, []string{"--ha.lease", "7s", "--gossip.seeds=a:1,b:2", "--gossip.allow_plaintext"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster != "orders" || c.HA.Tick != 200*time.Millisecond {
		t.Errorf("file values lost: %q %s", c.Cluster, c.HA.Tick)
	}
	if c.MySQL.Addr != "10.0.0.2:3306" {
		t.Errorf("env did not override the file: %s", c.MySQL.Addr)
	}
	if c.HA.Lease != 7*time.Second {
		t.Errorf("flag did not override env: %s", c.HA.Lease)
	}
	if strings.Join(c.Gossip.Seeds, " ") != "a:1 b:2" || !c.Gossip.AllowPlaintext {
		t.Errorf("list or bool flag: %q %v", c.Gossip.Seeds, c.Gossip.AllowPlaintext)
	}
	if c.Policy().RemoveAfter != 30*time.Minute {
		t.Errorf("membership.remove_after from env: %s", c.Policy().RemoveAfter)
	}
	if c.HA.DetectionTimeout != Default().HA.DetectionTimeout {
		t.Errorf("default lost: %s", c.HA.DetectionTimeout)
	}
}

func TestLoadRejects(t *testing.T) {
	tests := []struct {
		name, yaml string
		env, args  []string
		want       []string
	}{
		{name: "unknown top key", yaml: "clusterr: x\n", want: []string{"unknown key clusterr"}},
		{name: "unknown nested key", yaml: "mysql:\n  adr: x\n", want: []string{"unknown key mysql.adr"}},
		{name: "bad duration", yaml: "ha:\n  lease: soon\n", want: []string{"ha.lease", "soon"}},
		{name: "list for a scalar", yaml: "cluster: [a, b]\n", want: []string{"cluster takes one value"}},
		{name: "unknown env", env: []string{"SHOAL_MYSQL_ADRR=x"}, want: []string{"SHOAL_MYSQL_ADRR"}},
		{name: "bad env int", env: []string{"SHOAL_RAFT_BOOTSTRAP_EXPECT=three"}, want: []string{"raft.bootstrap_expect", "three"}},
		{name: "unknown flag", args: []string{"--nope", "1"}, want: []string{"--nope"}},
		{name: "bad bool flag", args: []string{"--gossip.allow_plaintext=maybe"}, want: []string{"gossip.allow_plaintext"}},
		{name: "renamed key", yaml: "raft:\n  remove_after: 30m\n", want: []string{"unknown key raft.remove_after"}},
		{name: "several at once", yaml: "a: 1\nb: 2\n", want: []string{"unknown key a", "unknown key b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.yaml != "" {
				path = writeFile(t, "c.yaml", tt.yaml, 0o600)
			}
			_, err := Load(path, tt.env, tt.args)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func validConfig(t *testing.T) Config {
	c := Default()
	c.Cluster, c.Node.ID = "orders", "db-1"
	c.MySQL.ReplPasswordFile = writeFile(t, "repl", "pw\n", 0o600)
	c.Admin.TokenFile = writeFile(t, "token", "tok\n", 0o600)
	c.Gossip.KeyFiles = []string{writeFile(t, "key", "AAECAwQFBgcICQoLDA0ODw==\n", 0o600)}
	c.Raft.AllowPlaintext = true
	c.Raft.Advertise = "10.0.0.1:7947"
	return c
}

func TestValidate(t *testing.T) {
	c := validConfig(t)
	if err := c.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	s, err := c.Secrets()
	if err != nil || s.ReplPassword != "pw" || s.AdminToken != "tok" || len(s.GossipKeys) != 1 || len(s.GossipKeys[0]) != 16 {
		t.Fatalf("secrets %+v, %v", s, err)
	}

	c.Cluster = "Orders!"
	c.MySQL.SemiSync = "fast"
	c.Raft.CertFile = "/x.pem"
	c.HA.Lease = 100 * time.Millisecond
	c.Membership.RemoveAfter = time.Second
	err = c.Validate()
	for _, want := range []string{"cluster:", "mysql.semi_sync:", "raft.tls:", "ha.lease", "membership.remove_after"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want a problem with %s", err, want)
		}
	}
}

func TestSecretsRejects(t *testing.T) {
	c := validConfig(t)
	c.MySQL.ReplPasswordFile = writeFile(t, "open", "pw", 0o644)
	c.Admin.TokenFile = writeFile(t, "empty", "", 0o600)
	c.Gossip.KeyFiles = []string{writeFile(t, "short", "AAEC", 0o600), filepath.Join(t.TempDir(), "missing")}
	_, err := c.Secrets()
	for _, want := range []string{"world-readable", "is empty", "holds 3 bytes", "missing"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Secrets() = %v, want %q", err, want)
		}
	}
}

func TestUsageListsEveryKey(t *testing.T) {
	u := Usage()
	for _, k := range keys {
		if !strings.Contains(u, "--"+k.name) || !strings.Contains(u, envName(k.name)) {
			t.Errorf("usage lacks %s", k.name)
		}
	}
}

func FuzzLoadYAML(f *testing.F) {
	f.Add("cluster: orders\nha:\n  lease: 4s\n")
	f.Add("gossip:\n  seeds: [a, b]\n")
	f.Add("- a\n- b\n")
	f.Fuzz(func(t *testing.T, doc string) {
		c := Default()
		_ = loadYAML(&c, []byte(doc))
	})
}

// The example in docs/ must stay loadable and valid as the keys evolve.
func TestExampleConfig(t *testing.T) {
	c, err := Load("../../docs/shoal.example.yaml", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("docs/shoal.example.yaml does not validate: %v", err)
	}
	if c.Cluster != "orders" || c.MySQLAdvertise() != "10.0.0.11:3306" || len(c.Gossip.Seeds) != 3 {
		t.Fatalf("example read wrong: %+v", c)
	}
}

func TestValidateKubernetes(t *testing.T) {
	c := validConfig(t)
	c.Kubernetes.Enabled = true
	if err := c.Validate(); err != nil {
		t.Fatalf("enabled with defaults: %v", err)
	}
	if p, r := c.KubeServices(); p != c.Cluster+"-primary" || r != c.Cluster+"-replicas" {
		t.Errorf("default services %s, %s", p, r)
	}
	c.Kubernetes.Release = "shop"
	if p, r := c.KubeServices(); p != "shop-primary" || r != "shop-replicas" {
		t.Errorf("services of release shop: %s, %s", p, r)
	}
	c.Kubernetes.PodName = "other-0"
	c.Kubernetes.Namespace = "Bad_NS"
	c.Kubernetes.PrimaryService, c.Kubernetes.ReplicasService = "same", "same"
	c.Kubernetes.ForceDeleteTerminating = true
	err := c.Validate()
	for _, want := range []string{"kubernetes.pod_name:", "kubernetes.namespace:", "are both \"same\"", "need kubernetes.heal.enabled"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want a problem with %s", err, want)
		}
	}
	c.Kubernetes.Heal.Enabled, c.Kubernetes.Heal.Grace, c.Kubernetes.Heal.MinInterval, c.Kubernetes.Heal.StartGrace = true, time.Second, 0, 0
	c.Kubernetes.Roll.Enabled, c.Kubernetes.Roll.MinInterval = true, -time.Second
	err = c.Validate()
	for _, want := range []string{"kubernetes.heal.grace (1s) must be at least", "kubernetes.heal.min_interval must be positive",
		"kubernetes.heal.start_grace must be positive, got 0s",
		"kubernetes.roll.min_interval must be positive, got -1s"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want a problem with %s", err, want)
		}
	}
	c.Kubernetes.Enabled = false
	if err := c.Validate(); err != nil {
		t.Errorf("disabled, the section is not checked: %v", err)
	}
}
