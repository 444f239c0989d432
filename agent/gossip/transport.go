package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	sockaddr "github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"
)

const (
	// maxPacket is the largest UDP datagram; memberlist's own packets stay far below it.
	maxPacket = 65536
	// recvBuffer is the socket receive buffer asked for, as memberlist's NetTransport does, so a
	// burst of packets is not dropped while the reader is descheduled.
	recvBuffer = 2 << 20
	// Pauses after a failed accept or read, doubling from min to max, so a persistent error
	// (a socket out of descriptors) is logged a few times a second rather than in a busy loop.
	listenBackoffMin = 5 * time.Millisecond
	listenBackoffMax = time.Second
)

// transport is memberlist's NetTransport for one bind address, with one difference: it reads
// UDP packets into a single reused buffer and hands memberlist a copy of each packet's bytes.
// NetTransport allocates (and zeroes) a fresh 64 KiB buffer for every packet it receives: on
// an idle agent, with a packet every 70 ms or so, that was a tenth of the agent's Go CPU time
// and most of its garbage (docs/benchmarks.md, fourteenth session).
type transport struct {
	log     *slog.Logger
	tcp     *net.TCPListener
	udp     *net.UDPConn
	packets chan *memberlist.Packet
	streams chan net.Conn
	// done is closed by Shutdown: a reader blocked handing over a packet or a connection that
	// memberlist will never take (it failed to start) gives up.
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

var _ memberlist.NodeAwareTransport = (*transport)(nil)

// newTransport listens on TCP and UDP at bindAddr:port. With port 0 the kernel picks the TCP
// port and UDP takes the same one, tried up to ten times: another socket may hold that UDP
// port already.
func newTransport(log *slog.Logger, bindAddr string, port int) (*transport, error) {
	ip := net.ParseIP(bindAddr)
	if ip == nil {
		return nil, fmt.Errorf("gossip transport: bind address %q is not an IP address", bindAddr)
	}
	tries := 1
	if port == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var t *transport
		if t, err = listen(log, ip, port); err == nil {
			return t, nil
		}
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	return nil, err
}

var errPortTaken = errors.New("UDP port taken")

func listen(log *slog.Logger, ip net.IP, port int) (*transport, error) {
	tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: port})
	if err != nil {
		return nil, fmt.Errorf("gossip transport: listen on TCP %s: %w", net.JoinHostPort(ip.String(), fmt.Sprint(port)), err)
	}
	udpAddr := &net.UDPAddr{IP: ip, Port: tcp.Addr().(*net.TCPAddr).Port}
	udp, err := net.ListenUDP("udp", udpAddr)
	if err != nil {
		tcp.Close()
		if port == 0 && errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("gossip transport: %w: %w", errPortTaken, err)
		}
		return nil, fmt.Errorf("gossip transport: listen on UDP %s: %w", udpAddr, err)
	}
	if err := setRecvBuffer(udp); err != nil {
		tcp.Close()
		udp.Close()
		return nil, fmt.Errorf("gossip transport: size the UDP receive buffer: %w", err)
	}
	t := &transport{log: log, tcp: tcp, udp: udp,
		packets: make(chan *memberlist.Packet), streams: make(chan net.Conn), done: make(chan struct{})}
	t.wg.Add(2)
	go t.acceptStreams()
	go t.readPackets()
	return t, nil
}

// setRecvBuffer asks for recvBuffer and settles for less, halving, as the system allows.
func setRecvBuffer(c *net.UDPConn) error {
	var err error
	for size := recvBuffer; size > 0; size /= 2 {
		if err = c.SetReadBuffer(size); err == nil {
			return nil
		}
	}
	return err
}

// port is the port both listeners use.
func (t *transport) port() int { return t.tcp.Addr().(*net.TCPAddr).Port }

// FinalAdvertiseAddr is the address given, or else the bound one; a wildcard bind advertises a
// private address of this host, as NetTransport does. Port 0 means the bound port.
func (t *transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if port == 0 {
		port = t.port()
	}
	if ip != "" {
		addr := net.ParseIP(ip)
		if addr == nil {
			return nil, 0, fmt.Errorf("gossip transport: advertise address %q is not an IP address", ip)
		}
		if v4 := addr.To4(); v4 != nil {
			addr = v4
		}
		return addr, port, nil
	}
	bound := t.tcp.Addr().(*net.TCPAddr).IP
	if !bound.IsUnspecified() {
		return bound, port, nil
	}
	private, err := sockaddr.GetPrivateIP()
	if err != nil {
		return nil, 0, fmt.Errorf("gossip transport: find a private address to advertise: %w", err)
	}
	addr := net.ParseIP(private)
	if addr == nil {
		return nil, 0, errors.New("gossip transport: no private address to advertise; set gossip.advertise")
	}
	return addr, port, nil
}

func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends one packet; the time is taken after the write, as NetTransport does.
func (t *transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	to, err := net.ResolveUDPAddr("udp", a.Addr)
	if err != nil {
		return time.Time{}, fmt.Errorf("gossip transport: resolve %q: %w", a.Addr, err)
	}
	_, err = t.udp.WriteTo(b, to)
	return time.Now(), err
}

func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", a.Addr, timeout)
}

func (t *transport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *transport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown closes both listeners and waits for their goroutines; later calls do nothing.
func (t *transport) Shutdown() error {
	var err error
	t.closeOnce.Do(func() {
		close(t.done)
		err = errors.Join(t.tcp.Close(), t.udp.Close())
		t.wg.Wait()
	})
	return err
}

// stopOrPause handles a listener's error: true once Shutdown closed it, else the error is
// logged and the next try waits.
func (t *transport) stopOrPause(pause *backoff, what string, err error) bool {
	select {
	case <-t.done:
		return true
	default:
	}
	t.log.Error("gossip: "+what+" failed", "err", err)
	pause.wait()
	return false
}

func (t *transport) acceptStreams() {
	defer t.wg.Done()
	var pause backoff
	for {
		conn, err := t.tcp.Accept()
		if err != nil {
			if t.stopOrPause(&pause, "accepting a TCP connection", err) {
				return
			}
			continue
		}
		pause.reset()
		select {
		case t.streams <- conn:
		case <-t.done:
			conn.Close()
			return
		}
	}
}

// readPackets hands memberlist each packet in a slice of its own: memberlist may keep a packet
// (it queues it for its handlers), so the read buffer is never lent out.
func (t *transport) readPackets() {
	defer t.wg.Done()
	var pause backoff
	buf := make([]byte, maxPacket)
	for {
		n, from, err := t.udp.ReadFrom(buf)
		received := time.Now() // as close to the read as can be: memberlist times its probes with it
		if err != nil {
			if t.stopOrPause(&pause, "reading a UDP packet", err) {
				return
			}
			continue
		}
		pause.reset()
		if n == 0 {
			t.log.Warn("gossip: empty UDP packet dropped", "from", from.String())
			continue
		}
		select {
		case t.packets <- &memberlist.Packet{Buf: bytes.Clone(buf[:n]), From: from, Timestamp: received}:
		case <-t.done:
			return
		}
	}
}

// backoff is a doubling pause between listenBackoffMin and listenBackoffMax.
type backoff struct{ next time.Duration }

func (b *backoff) wait() {
	b.next = min(max(2*b.next, listenBackoffMin), listenBackoffMax)
	time.Sleep(b.next)
}

func (b *backoff) reset() { b.next = 0 }
