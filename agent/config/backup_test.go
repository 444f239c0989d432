package config

import (
	"strings"
	"testing"

	"github.com/shoal-db/shoal/agent/ha"
)

func TestBackupConfig(t *testing.T) {
	keys := func(t *testing.T) (string, string) {
		return writeFile(t, "id", "AKIA", 0o600), writeFile(t, "secret", "s3cr3t", 0o600)
	}
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, b *Backup)
		want   []string // problems; none for a valid section
	}{
		{"off by default", func(*testing.T, *Backup) {}, nil},
		{"static keys", func(t *testing.T, b *Backup) {
			b.S3.Bucket, b.S3.Endpoint = "backups", "s3.eu-west-1.amazonaws.com"
			b.S3.AccessKeyIDFile, b.S3.SecretAccessKeyFile = keys(t)
		}, nil},
		{"iam with sse-kms", func(t *testing.T, b *Backup) {
			b.S3.Bucket, b.S3.Endpoint, b.S3.Credentials, b.S3.SSE, b.S3.SSEKMSKeyID = "backups", "s3.amazonaws.com", "iam", "kms", "key-1"
		}, nil},
		{"bucket without endpoint or keys", func(t *testing.T, b *Backup) { b.S3.Bucket = "backups" },
			[]string{"backup.s3.endpoint: required", "access_key_id_file and backup.s3.secret_access_key_file: required"}},
		{"endpoint with scheme", func(t *testing.T, b *Backup) { b.S3.Endpoint = "https://s3.amazonaws.com" }, []string{"without a scheme"}},
		{"bad enums", func(t *testing.T, b *Backup) {
			b.S3.Lookup, b.S3.SSE, b.S3.Credentials, b.Compression = "dns", "aes", "vault", "max"
		}, []string{"backup.s3.lookup", "backup.s3.sse:", "backup.s3.credentials", "backup.compression"}},
		{"ca without tls", func(t *testing.T, b *Backup) { b.S3.TLS, b.S3.CAFile = false, "/ca.pem" }, []string{"backup.s3.ca_file"}},
		{"kms without key", func(t *testing.T, b *Backup) { b.S3.SSE = "kms" }, []string{"sse_kms_key_id"}},
		{"key without kms", func(t *testing.T, b *Backup) { b.S3.SSEKMSKeyID = "k" }, []string{"sse_kms_key_id"}},
		{"key files with env", func(t *testing.T, b *Backup) {
			b.S3.Credentials = "env"
			b.S3.AccessKeyIDFile, _ = keys(t)
		}, []string{"key files go with"}},
		{"tiny parts", func(t *testing.T, b *Backup) { b.S3.PartSizeMiB = 1 }, []string{"part_size_mib"}},
		{"no parts in flight", func(t *testing.T, b *Backup) { b.S3.ParallelParts = 0 }, []string{"parallel_parts: want 1..64"}},
		{"objects beyond 10000 parts", func(t *testing.T, b *Backup) { b.S3.PartSizeMiB, b.ObjectSizeMiB = 5, 50001 }, []string{"object_size_mib: want 5..50000"}},
		{"objects below a part", func(t *testing.T, b *Backup) { b.ObjectSizeMiB = 1 }, []string{"object_size_mib"}},
		{"negative rate", func(t *testing.T, b *Backup) { b.MaxMiBPerSecond = -1 }, []string{"max_mib_per_second"}},
		{"relative dirs", func(t *testing.T, b *Backup) { b.TmpDir, b.CloneDir, b.CloneDirLocal = "tmp", "clone", "x" },
			[]string{"backup.tmp_dir", "backup.clone_dir:", "backup.clone_dir_local: want an absolute"}},
		{"local clone dir alone", func(t *testing.T, b *Backup) { b.CloneDirLocal = "/x" }, []string{"set backup.clone_dir too"}},
		{"relative verify dirs", func(t *testing.T, b *Backup) { b.VerifyDir, b.VerifyDirServer = "v", "w" },
			[]string{"backup.verify_dir: want an absolute", "backup.verify_dir_server: want an absolute"}},
		{"unknown reseed from backup", func(t *testing.T, b *Backup) { b.ReseedFromBackup = "sometimes" }, []string{"backup.reseed_from_backup: want never, no_donor or always"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig(t)
			tc.change(t, &c.Backup)
			err := c.Validate()
			if len(tc.want) == 0 && err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			for _, want := range tc.want {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %v, want a problem with %q", err, want)
				}
			}
		})
	}
}

func TestValidateBackup(t *testing.T) {
	c := Default()
	c.Node.ID = "db1"
	if err := c.ValidateBackup(); err == nil || !strings.Contains(err.Error(), "cluster:") || !strings.Contains(err.Error(), "backup.s3.bucket: required") {
		t.Errorf("ValidateBackup() = %v, want cluster and bucket problems", err)
	}
	// The backup commands need neither Raft nor gossip settings.
	c.Cluster, c.Backup.S3.Bucket, c.Backup.S3.Endpoint, c.Backup.S3.Credentials = "orders", "b", "127.0.0.1:9000", "env"
	if err := c.ValidateBackup(); err != nil {
		t.Errorf("ValidateBackup() = %v", err)
	}
}

func TestBackupSecrets(t *testing.T) {
	c := validConfig(t)
	c.Backup.S3.AccessKeyIDFile = writeFile(t, "id", "AKIA\n", 0o600)
	c.Backup.S3.SecretAccessKeyFile = writeFile(t, "secret", "s3cr3t", 0o644)
	if _, err := c.Secrets(); err == nil || !strings.Contains(err.Error(), "backup.s3.secret_access_key_file") || !strings.Contains(err.Error(), "world-readable") {
		t.Errorf("Secrets() = %v, want the world-readable secret key refused", err)
	}
	c.Backup.S3.SecretAccessKeyFile = writeFile(t, "secret2", "s3cr3t", 0o600)
	s, err := c.Secrets()
	if err != nil || s.S3AccessKeyID != "AKIA" || s.S3SecretAccessKey != "s3cr3t" || s.S3SessionToken != "" {
		t.Errorf("Secrets() = %+v, %v", s, err)
	}
}

// Re-seeds from a backup need a store; backup.reseed_from_backup says when.
func TestBackupReseedPolicy(t *testing.T) {
	for _, tc := range []struct {
		bucket, value string
		want          ha.BackupReseed
	}{
		{"", "always", ha.BackupReseedNever},
		{"b", "never", ha.BackupReseedNever},
		{"b", "no_donor", ha.BackupReseedNoDonor},
		{"b", "always", ha.BackupReseedAlways},
	} {
		c := Default()
		c.Backup.S3.Bucket, c.Backup.ReseedFromBackup = tc.bucket, tc.value
		if got := c.Policy().ReseedFromBackup; got != tc.want {
			t.Errorf("bucket %q, backup.reseed_from_backup %s: %v, want %v", tc.bucket, tc.value, got, tc.want)
		}
	}
}
