// Package freeport hands tests a loopback port that a server they start can bind.
//
// A port the kernel picked for ":0" lies in its ephemeral range, and until the server binds it
// (a child process, seconds later on a busy machine) any outgoing connection on the machine may
// take it as its source port: etcd then failed with "bind: address already in use" in CI. These
// ports come from below that range, where the kernel never hands out source ports.
package freeport

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// lowest is the start of the range drawn from, above the well-known and most registered ports.
const lowest = 10000

// Port returns a port on 127.0.0.1 that nothing listens on now, below the ephemeral range.
func Port(t testing.TB) int {
	t.Helper()
	top := ephemeralStart()
	for range 200 {
		port := lowest + rand.IntN(top-lowest)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatalf("no free port between %d and %d", lowest, top)
	return 0
}

// Addr returns "127.0.0.1:<Port>".
func Addr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(Port(t))
}

// ephemeralStart is the first port of the kernel's ephemeral range (Linux's default when it
// cannot be read).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= lowest+1000 {
		return 32768
	}
	return n
}
