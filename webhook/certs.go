package webhook

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// CertReloader serves the key pair in two files and reads them again when either file's
// modification time changes, as when the kubelet updates a mounted Secret (a cert-manager
// renewal): the webhook keeps running across certificate rotations.
type CertReloader struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	modTime [2]time.Time
}

// NewCertReloader loads the pair once; an unreadable or mismatched pair is an error.
func NewCertReloader(certFile, keyFile string) (*CertReloader, error) {
	r := &CertReloader{certFile: certFile, keyFile: keyFile}
	if _, err := r.GetCertificate(nil); err != nil {
		return nil, err
	}
	return r, nil
}

// GetCertificate is tls.Config.GetCertificate. When the files changed but do not load (a
// half-written update), it keeps serving the pair it has.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	var mod [2]time.Time
	for i, f := range []string{r.certFile, r.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.cert != nil {
				return r.cert, nil
			}
			return nil, fmt.Errorf("webhook TLS: %w", err)
		}
		mod[i] = st.ModTime()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cert != nil && mod == r.modTime {
		return r.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		if r.cert != nil {
			return r.cert, nil
		}
		return nil, fmt.Errorf("webhook TLS: %w", err)
	}
	r.cert, r.modTime = &cert, mod
	return r.cert, nil
}
