package harness

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Simulated hosts are loopback addresses. Linux routes all of 127.0.0.0/8 to lo, so any of them
// can be bound without configuring anything; allocated ones come from 127.100.0.0/16, away from
// the 127.0.0.x addresses people and the demo pick by hand.
const allocPrefix = "127.100."

func isIPv4(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4()
}

// leasesDir holds one file per address:port in use by a harness server, naming the server's
// directory. Together with a lock it keeps parallel test processes off each other's addresses.
func leasesDir() string { return filepath.Join(cacheDir(), "hosts") }

func leaseFile(host string, port int) string {
	return filepath.Join(leasesDir(), host+"_"+strconv.Itoa(port))
}

// leaseHost reserves host:port for the server in dir; with host empty it picks a free address.
func leaseHost(host string, port int, dir string) (string, error) {
	lock, err := lockFile(filepath.Join(leasesDir(), ".lock"), syscall.LOCK_EX)
	if err != nil {
		return "", fmt.Errorf("lease an address: %w", err)
	}
	defer lock.unlock()
	if host != "" {
		if owner, taken := leaseOwner(host, port); taken && owner != dir {
			return "", fmt.Errorf("%s:%d is in use by the harness server in %s", host, port, owner)
		}
		return host, writeLease(host, port, dir)
	}
	for range 200 {
		candidate := allocPrefix + strconv.Itoa(1+rand.IntN(254)) + "." + strconv.Itoa(1+rand.IntN(254))
		if _, taken := leaseOwner(candidate, port); taken || !bindable(candidate, port) {
			continue
		}
		return candidate, writeLease(candidate, port, dir)
	}
	return "", errors.New("lease an address: no free loopback address found in 200 tries")
}

// leaseOwner returns the directory holding the lease, if the lease is live.
func leaseOwner(host string, port int) (string, bool) {
	b, err := os.ReadFile(leaseFile(host, port))
	if err != nil {
		return "", false
	}
	owner := strings.TrimSpace(string(b))
	if _, err := os.Stat(owner); err != nil {
		return "", false // its server is gone: the lease is stale
	}
	return owner, true
}

func writeLease(host string, port int, dir string) error {
	if err := os.WriteFile(leaseFile(host, port), []byte(dir+"\n"), 0o644); err != nil {
		return fmt.Errorf("lease %s:%d: %w", host, port, err)
	}
	return nil
}

// bindable reports whether nothing listens on host:port right now.
func bindable(host string, port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// releaseHost drops the lease of host:port if dir holds it.
func releaseHost(host string, port int, dir string) {
	lock, err := lockFile(filepath.Join(leasesDir(), ".lock"), syscall.LOCK_EX)
	if err != nil {
		return
	}
	defer lock.unlock()
	if owner, _ := leaseOwner(host, port); owner == dir {
		os.Remove(leaseFile(host, port))
	}
}

// pruneLeases removes leases whose server directory is gone.
func pruneLeases(log *slog.Logger) {
	lock, err := lockFile(filepath.Join(leasesDir(), ".lock"), syscall.LOCK_EX)
	if err != nil {
		log.Warn("cannot lock address leases", "err", err)
		return
	}
	defer lock.unlock()
	entries, _ := os.ReadDir(leasesDir())
	for _, e := range entries {
		name := e.Name()
		i := strings.LastIndexByte(name, '_')
		if strings.HasPrefix(name, ".") || i < 0 {
			continue
		}
		port, err := strconv.Atoi(name[i+1:])
		if err != nil {
			continue
		}
		if _, live := leaseOwner(name[:i], port); !live {
			os.Remove(filepath.Join(leasesDir(), name))
		}
	}
}
