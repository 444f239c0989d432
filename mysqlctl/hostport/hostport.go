// Package hostport joins and splits "host:port" addresses the way net.JoinHostPort and
// net.SplitHostPort do, with the port as a number. It imports nothing from net, so the pure HA
// decision can compare a replica's source with a member's recorded address.
package hostport

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadAddress: an address is not host:port with a port from 0 to 65535.
var ErrBadAddress = errors.New("bad host:port address")

// Join returns host:port, with an IPv6 host in brackets.
func Join(host string, port int) string {
	p := strconv.Itoa(port)
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + p
	}
	return host + ":" + p
}

// Split reads host:port or [host]:port. The host may be empty (a wildcard listen address); the
// port may not.
func Split(addr string) (host string, port uint16, err error) {
	var portText string
	if rest, ok := strings.CutPrefix(addr, "["); ok {
		end := strings.IndexByte(rest, ']')
		if end < 0 || !strings.HasPrefix(rest[end+1:], ":") {
			return "", 0, fmt.Errorf("%w %q: want [host]:port", ErrBadAddress, addr)
		}
		host, portText = rest[:end], rest[end+2:]
		if strings.ContainsAny(host, "[]") {
			return "", 0, fmt.Errorf("%w %q: brackets inside the host", ErrBadAddress, addr)
		}
	} else {
		i := strings.LastIndexByte(addr, ':')
		if i < 0 {
			return "", 0, fmt.Errorf("%w %q: missing port", ErrBadAddress, addr)
		}
		host, portText = addr[:i], addr[i+1:]
		if strings.ContainsAny(host, ":[]") {
			return "", 0, fmt.Errorf("%w %q: an IPv6 host needs brackets", ErrBadAddress, addr)
		}
	}
	if strings.ContainsAny(portText, "[]") {
		return "", 0, fmt.Errorf("%w %q: brackets after the host", ErrBadAddress, addr)
	}
	n, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("%w %q: port %q is not a number from 0 to 65535", ErrBadAddress, addr, portText)
	}
	return host, uint16(n), nil
}
