package consensus

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/shoal-db/shoal/consensus/peertls"
)

const (
	// transportTimeout bounds one RPC's I/O. Raft scales it for snapshot installs.
	transportTimeout = 10 * time.Second
	// maxPool is the number of idle connections kept per peer.
	maxPool = 3
	// handshakeTimeout stops a peer that connects and says nothing from holding a goroutine.
	handshakeTimeout = 10 * time.Second
)

// newTransport returns the transport cfg asks for: in-memory, plain TCP or mutual TLS.
func newTransport(cfg Config, logger hclog.Logger) (raft.Transport, error) {
	if cfg.Network != nil {
		return cfg.Network.join(cfg.NodeID), nil
	}
	var advertise net.Addr
	host, _, _ := net.SplitHostPort(cfg.AdvertiseAddr)
	switch {
	case cfg.AdvertiseAddr != "" && cfg.TLS != nil && net.ParseIP(host) == nil:
		// A name (a StatefulSet pod's stable DNS name) stays a name: peers dial it, so a member
		// back at a new IP is found at the address in their Raft configuration. It is not
		// resolved here: the pod's own record may not be published yet.
		advertise = namedAddr(cfg.AdvertiseAddr)
	case cfg.AdvertiseAddr != "":
		a, err := net.ResolveTCPAddr("tcp", cfg.AdvertiseAddr)
		if err != nil {
			return nil, fmt.Errorf("resolve advertise addr: %w", err)
		}
		advertise = a
	}
	tc := &raft.NetworkTransportConfig{Logger: logger, MaxPool: maxPool, Timeout: transportTimeout}
	if cfg.TLS == nil {
		t, err := raft.NewTCPTransportWithConfig(cfg.BindAddr, advertise, tc)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", cfg.BindAddr, err)
		}
		return t, nil
	}
	layer, err := newTLSLayer(cfg.BindAddr, advertise, cfg.TLS)
	if err != nil {
		return nil, err
	}
	tc.Stream = layer
	return raft.NewNetworkTransportWithConfig(tc), nil
}

// tlsLayer is a raft.StreamLayer speaking mutual TLS. Both sides verify the peer the same way
// (peertls), so a node with a certificate from another CA can neither dial nor be dialled.
type tlsLayer struct {
	net.Listener
	advertise net.Addr
	server    *tls.Config
	client    *tls.Config
}

func newTLSLayer(bind string, advertise net.Addr, base *tls.Config) (*tlsLayer, error) {
	l, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", bind, err)
	}
	if advertise == nil {
		advertise = l.Addr()
	}
	if _, named := advertise.(namedAddr); named {
		return &tlsLayer{Listener: l, advertise: advertise, server: peertls.Server(base), client: peertls.Client(base)}, nil
	}
	if a, ok := advertise.(*net.TCPAddr); !ok || a.IP.IsUnspecified() {
		l.Close()
		return nil, fmt.Errorf("advertise addr %s cannot be dialled by other nodes", advertise)
	}
	return &tlsLayer{Listener: l, advertise: advertise, server: peertls.Server(base), client: peertls.Client(base)}, nil
}

func (t *tlsLayer) Addr() net.Addr { return t.advertise }

// namedAddr is an advertise address by DNS name, resolved anew at every dial (peer certificates
// are checked against the cluster CA, never the dialled name: peertls).
type namedAddr string

func (a namedAddr) Network() string { return "tcp" }
func (a namedAddr) String() string  { return string(a) }

func (t *tlsLayer) Accept() (net.Conn, error) {
	c, err := t.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &serverConn{Conn: tls.Server(c, t.server)}, nil
}

// Dial completes the handshake before returning, so a refused peer shows up as a dial error
// naming the reason rather than as a garbled RPC.
func (t *tlsLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d := tls.Dialer{Config: t.client}
	c, err := d.DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("raft TLS dial %s: %w", address, err)
	}
	return c, nil
}

// serverConn completes the handshake, with a deadline, on the first Read (which Raft's
// connection handler does first, off the accept loop); Raft logs the error, which names the
// peer and the reason it was refused.
type serverConn struct {
	*tls.Conn
	once sync.Once
	err  error
}

func (c *serverConn) Read(b []byte) (int, error) {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
		defer cancel()
		if err := c.HandshakeContext(ctx); err != nil {
			c.err = fmt.Errorf("raft TLS handshake with %s: %w", c.RemoteAddr(), err)
		}
	})
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Read(b)
}

// InmemNetwork connects the nodes of one in-process test without sockets; it can cut a node off
// to simulate a partition. A node's address on it is its NodeID.
type InmemNetwork struct {
	mu    sync.Mutex
	nodes map[string]*raft.InmemTransport
	cut   map[string]bool
}

// NewInmemNetwork returns an empty network; pass it as Config.Network to every node of a test.
func NewInmemNetwork() *InmemNetwork {
	return &InmemNetwork{nodes: map[string]*raft.InmemTransport{}, cut: map[string]bool{}}
}

// join returns a transport for id, replacing that of an earlier incarnation of id.
func (n *InmemNetwork) join(id string) *raft.InmemTransport {
	_, t := raft.NewInmemTransport(raft.ServerAddress(id))
	n.mu.Lock()
	defer n.mu.Unlock()
	n.nodes[id] = t
	n.relink()
	return t
}

// leave forgets t, unless a newer incarnation of id has replaced it.
func (n *InmemNetwork) leave(id string, t *raft.InmemTransport) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.nodes[id] != t {
		return
	}
	delete(n.nodes, id)
	for _, other := range n.nodes {
		other.Disconnect(raft.ServerAddress(id))
	}
}

// Disconnect cuts id off from every other node, both ways, as a partition would. The cut
// outlives restarts of id until Reconnect.
func (n *InmemNetwork) Disconnect(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[id] = true
	n.relink()
}

// Reconnect heals a Disconnect.
func (n *InmemNetwork) Reconnect(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.cut, id)
	n.relink()
}

// relink sets every route from the current members and cuts; one idempotent path keeps joins,
// restarts and partitions consistent. Callers hold mu.
func (n *InmemNetwork) relink() {
	for a, ta := range n.nodes {
		for b, tb := range n.nodes {
			switch {
			case a == b:
			case n.cut[a] || n.cut[b]:
				ta.Disconnect(raft.ServerAddress(b))
			default:
				ta.Connect(raft.ServerAddress(b), tb)
			}
		}
	}
}
