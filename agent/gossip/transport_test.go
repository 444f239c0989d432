package gossip

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"
)

func startTransport(t *testing.T) (*transport, string) {
	t.Helper()
	ip := nextAddr(t)
	tr, err := newTransport(slog.New(slog.DiscardHandler), ip, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Shutdown() })
	return tr, net.JoinHostPort(ip, fmt.Sprint(tr.port()))
}

// dialPackets returns a UDP socket that sends to addr.
func dialPackets(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Every packet reaches memberlist in a slice of its own, sized to the packet, and receiving one
// allocates about its size: NetTransport allocated 64 KiB per packet.
func TestTransportPacketsOwnTheirBytes(t *testing.T) {
	tr, addr := startTransport(t)
	sender := dialPackets(t, addr)

	const packets = 400
	payload := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 200+i%100) }
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var got [][]byte
	for i := range packets {
		if _, err := sender.Write(payload(i)); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-tr.PacketCh():
			if p.From == nil || p.Timestamp.IsZero() {
				t.Fatalf("packet %d: from %v at %v", i, p.From, p.Timestamp)
			}
			if cap(p.Buf) > 2*len(p.Buf) {
				t.Fatalf("packet %d: %d bytes in a buffer of %d", i, len(p.Buf), cap(p.Buf))
			}
			got = append(got, p.Buf)
		case <-time.After(10 * time.Second):
			t.Fatalf("packet %d never arrived", i)
		}
	}
	runtime.ReadMemStats(&after)
	for i, b := range got { // later reads must not have overwritten earlier packets
		if !bytes.Equal(b, payload(i)) {
			t.Fatalf("packet %d changed after it was handed over: % x", i, b[:8])
		}
	}
	// A packet, its Packet and the sender's write are well under 4 KiB together.
	if perPacket := (after.TotalAlloc - before.TotalAlloc) / packets; perPacket > 4<<10 {
		t.Fatalf("%d bytes allocated per packet received", perPacket)
	}
}

func TestTransportStreamsAndAddresses(t *testing.T) {
	tr, addr := startTransport(t)
	conn, err := tr.DialTimeout(addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	select {
	case in := <-tr.StreamCh():
		in.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("accepted connection never handed over")
	}

	host, _, _ := net.SplitHostPort(addr)
	for _, c := range []struct {
		ip       string
		port     int
		wantIP   string
		wantPort int
	}{
		{"", 0, host, tr.port()},
		{"10.1.2.3", 7000, "10.1.2.3", 7000},
		{"10.1.2.3", 0, "10.1.2.3", tr.port()},
		{"fd00::1", 7000, "fd00::1", 7000},
	} {
		ip, port, err := tr.FinalAdvertiseAddr(c.ip, c.port)
		if err != nil || ip.String() != c.wantIP || port != c.wantPort {
			t.Errorf("FinalAdvertiseAddr(%q, %d) = %v, %d, %v; want %s, %d", c.ip, c.port, ip, port, err, c.wantIP, c.wantPort)
		}
	}
	if _, _, err := tr.FinalAdvertiseAddr("db-0", 7000); err == nil {
		t.Error("FinalAdvertiseAddr accepted a name for an IP address")
	}
}

func TestTransportRefusesATakenPort(t *testing.T) {
	tr, addr := startTransport(t)
	host, _, _ := net.SplitHostPort(addr)
	if _, err := newTransport(slog.New(slog.DiscardHandler), host, tr.port()); err == nil {
		t.Fatal("a second transport listened on a taken port")
	}
	if _, err := newTransport(slog.New(slog.DiscardHandler), "db-0", 0); err == nil {
		t.Fatal("a transport listened on a name, not an IP address")
	}
}

// memberlist can fail to start after the transport listens, and then never reads its channels:
// Shutdown must not wait for a hand-over nobody takes.
func TestTransportShutdownWithNobodyReading(t *testing.T) {
	tr, addr := startTransport(t)
	sender := dialPackets(t, addr)
	if _, err := sender.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	time.Sleep(50 * time.Millisecond) // both readers now wait to hand over
	done := make(chan error, 1)
	go func() { done <- tr.Shutdown() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown waited for memberlist to take a packet")
	}
	if err := tr.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}
