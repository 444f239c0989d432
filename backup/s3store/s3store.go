// Package s3store is the backup store on S3 or any S3-compatible server (MinIO, Ceph, R2...),
// through minio-go: streaming multipart uploads of unknown size with a bounded part buffer.
package s3store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/encrypt"

	"github.com/shoal-db/shoal/backup"
)

// Credential sources.
const (
	// CredsStatic uses Config.AccessKeyID and SecretAccessKey (read from files by the caller).
	CredsStatic = "static"
	// CredsEnv reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (or MinIO's
	// MINIO_ROOT_USER and MINIO_ROOT_PASSWORD).
	CredsEnv = "env"
	// CredsIAM is minio-go's IAM chain: web identity (AWS_WEB_IDENTITY_TOKEN_FILE and
	// AWS_ROLE_ARN, as IRSA sets them), then the ECS and EC2 instance metadata endpoints.
	CredsIAM = "iam"
)

// Server-side encryption modes.
const (
	SSENone = ""
	SSES3   = "s3"  // SSE-S3: keys managed by the store
	SSEKMS  = "kms" // SSE-KMS with KMSKeyID
)

// Bucket addressing.
const (
	LookupAuto = "auto" // virtual-host for Amazon and Google endpoints, path-style otherwise
	LookupPath = "path"
	LookupDNS  = "virtual-host"
)

// defaultPartSize bounds the memory of an upload: minio-go buffers one part at a time.
const defaultPartSize = 16 << 20

// Config says how to reach the bucket.
type Config struct {
	// Endpoint is host[:port], e.g. s3.eu-west-1.amazonaws.com or 127.0.0.1:9000.
	Endpoint string
	Bucket   string
	// Prefix is prepended to every key ("" for the bucket's root), without leading or trailing
	// slash.
	Prefix string
	Region string
	// Insecure talks plain HTTP; the default is TLS.
	Insecure bool
	// CAFile adds the PEM certificates in it to the system's roots (a private CA).
	CAFile string
	// Lookup is LookupAuto (""), LookupPath or LookupDNS.
	Lookup string
	// SSE is SSENone, SSES3 or SSEKMS; KMSKeyID goes with SSEKMS.
	SSE, KMSKeyID string
	// Credentials is CredsStatic (the default when AccessKeyID is set), CredsEnv or CredsIAM.
	Credentials                                string
	AccessKeyID, SecretAccessKey, SessionToken string
	// PartSize is the multipart part size in bytes; 0 is 16 MiB.
	PartSize int64
	// ParallelParts is how many parts of one upload are sent at once (0 or 1: one), each
	// holding a part in memory. The stream fills the next part while the others are sent, so
	// compression and upload overlap instead of taking turns.
	ParallelParts int
	// MaxRetries bounds the attempts of each request (minio-go's default, 10, when 0).
	MaxRetries int
}

// Store is a bucket (and prefix) holding backups.
type Store struct {
	client   *minio.Client
	bucket   string
	prefix   string
	sse      encrypt.ServerSide
	partSize int64
	parallel int
	endpoint string
}

// New returns a store for cfg; it does not reach the server (Check does).
func New(cfg Config) (*Store, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("s3: endpoint and bucket are required")
	}
	creds, err := credentialsFor(cfg)
	if err != nil {
		return nil, err
	}
	tr, err := minio.DefaultTransport(!cfg.Insecure)
	if err != nil {
		return nil, fmt.Errorf("s3: transport: %w", err)
	}
	if cfg.CAFile != "" {
		if cfg.Insecure {
			return nil, errors.New("s3: a CA file goes with TLS, not plain HTTP")
		}
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("s3: ca file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("s3: ca file %s holds no PEM certificate", cfg.CAFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	lookup := minio.BucketLookupAuto
	switch cfg.Lookup {
	case "", LookupAuto:
	case LookupPath:
		lookup = minio.BucketLookupPath
	case LookupDNS:
		lookup = minio.BucketLookupDNS
	default:
		return nil, fmt.Errorf("s3: bucket lookup %q: want %s, %s or %s", cfg.Lookup, LookupAuto, LookupPath, LookupDNS)
	}
	var sse encrypt.ServerSide
	switch cfg.SSE {
	case SSENone:
	case SSES3:
		sse = encrypt.NewSSE()
	case SSEKMS:
		if sse, err = encrypt.NewSSEKMS(cfg.KMSKeyID, nil); err != nil {
			return nil, fmt.Errorf("s3: sse-kms: %w", err)
		}
	default:
		return nil, fmt.Errorf("s3: server-side encryption %q: want none, %s or %s", cfg.SSE, SSES3, SSEKMS)
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{Creds: creds, Secure: !cfg.Insecure, Transport: tr,
		Region: cfg.Region, BucketLookup: lookup, MaxRetries: cfg.MaxRetries})
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	partSize := cfg.PartSize
	if partSize == 0 {
		partSize = defaultPartSize
	}
	return &Store{client: client, bucket: cfg.Bucket, prefix: strings.Trim(cfg.Prefix, "/"), sse: sse,
		partSize: partSize, parallel: cfg.ParallelParts, endpoint: cfg.Endpoint}, nil
}

func credentialsFor(cfg Config) (*credentials.Credentials, error) {
	source := cfg.Credentials
	if source == "" && cfg.AccessKeyID != "" {
		source = CredsStatic
	}
	switch source {
	case CredsStatic:
		if cfg.AccessKeyID == "" || cfg.SecretAccessKey == "" {
			return nil, errors.New("s3: static credentials need an access key id and a secret access key")
		}
		return credentials.NewStaticV4(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken), nil
	case CredsEnv:
		return credentials.NewChainCredentials([]credentials.Provider{&credentials.EnvAWS{}, &credentials.EnvMinio{}}), nil
	case CredsIAM:
		return credentials.NewIAM(""), nil
	case "":
		return nil, fmt.Errorf("s3: no credentials: give an access key (files), or choose %s or %s", CredsEnv, CredsIAM)
	}
	return nil, fmt.Errorf("s3: credentials %q: want %s, %s or %s", source, CredsStatic, CredsEnv, CredsIAM)
}

// PartSize is the multipart part size: the memory an upload holds.
func (s *Store) PartSize() int64 { return s.partSize }

func (s *Store) full(key string) string {
	if s.prefix == "" {
		return key
	}
	return s.prefix + "/" + key
}

// Check reaches the bucket and says plainly what is wrong when it cannot.
func (s *Store) Check(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return s.explain("reach bucket "+s.bucket, err)
	}
	if !ok {
		return fmt.Errorf("s3: bucket %q does not exist at %s (create it first)", s.bucket, s.endpoint)
	}
	return nil
}

// Put streams r into key with a multipart upload of unknown size; minio-go aborts the upload
// when it fails.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	info, err := s.client.PutObject(ctx, s.bucket, s.full(key), r, -1, minio.PutObjectOptions{
		PartSize: uint64(s.partSize), ServerSideEncryption: s.sse, ContentType: "application/octet-stream",
		ConcurrentStreamParts: s.parallel > 1, NumThreads: uint(max(1, s.parallel))})
	if err != nil {
		return 0, s.explain("upload "+key, err)
	}
	return info.Size, nil
}

// Get opens key; a missing key is fs.ErrNotExist. Reading starts with the request, so a missing
// object is found here and not at the first read.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	obj, err := s.client.GetObject(ctx, s.bucket, s.full(key), minio.GetObjectOptions{})
	if err != nil {
		return nil, s.explain("download "+key, err)
	}
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		return nil, s.explain("download "+key, err)
	}
	return obj, nil
}

// List returns the objects under prefix, keys relative to the store's prefix.
func (s *Store) List(ctx context.Context, prefix string) ([]backup.ObjectInfo, error) {
	var out []backup.ObjectInfo
	for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.full(prefix), Recursive: true}) {
		if o.Err != nil {
			return nil, s.explain("list "+prefix, o.Err)
		}
		out = append(out, backup.ObjectInfo{Key: s.relative(o.Key), Size: o.Size})
	}
	return out, nil
}

func (s *Store) relative(key string) string {
	if s.prefix == "" {
		return key
	}
	return strings.TrimPrefix(key, s.prefix+"/")
}

// Remove deletes key.
func (s *Store) Remove(ctx context.Context, key string) error {
	if err := s.client.RemoveObject(ctx, s.bucket, s.full(key), minio.RemoveObjectOptions{}); err != nil {
		return s.explain("remove "+key, err)
	}
	return nil
}

// RemoveIncomplete aborts the multipart uploads left under prefix. It lists the whole bucket's
// and keeps those under prefix: MinIO lists uploads by exact object name only, not by prefix.
func (s *Store) RemoveIncomplete(ctx context.Context, prefix string) error {
	var errs []error
	for u := range s.client.ListIncompleteUploads(ctx, s.bucket, "", true) {
		if u.Err != nil {
			return s.explain("list unfinished uploads under "+prefix, u.Err)
		}
		if !strings.HasPrefix(u.Key, s.full(prefix)) {
			continue
		}
		if err := s.client.RemoveIncompleteUpload(ctx, s.bucket, u.Key); err != nil {
			errs = append(errs, s.explain("abort the upload of "+s.relative(u.Key), err))
		}
	}
	return errors.Join(errs...)
}

// explain turns minio-go's errors into ones that say what to fix.
func (s *Store) explain(what string, err error) error {
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "NoSuchKey":
		return fmt.Errorf("s3: %s: %w", what, fs.ErrNotExist)
	case "NoSuchBucket":
		return fmt.Errorf("s3: %s: bucket %q does not exist at %s: %w", what, s.bucket, s.endpoint, err)
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken", "InvalidToken":
		return fmt.Errorf("s3: %s: %s refused the credentials (%s): check the access key and secret: %w", what, s.endpoint, resp.Code, err)
	}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return fmt.Errorf("s3: %s: %s's certificate is not trusted (a private CA goes in the CA file): %w", what, s.endpoint, err)
	}
	var netErr net.Error
	var urlErr *url.Error
	if errors.As(err, &netErr) || errors.As(err, &urlErr) {
		return fmt.Errorf("s3: %s: cannot reach %s: %w", what, s.endpoint, err)
	}
	return fmt.Errorf("s3: %s: %w", what, err)
}
