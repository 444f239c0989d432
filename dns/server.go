package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"

	mdns "github.com/miekg/dns"
)

// Server answers queries for the current Zone over UDP and TCP. Update swaps the zone
// atomically, so the query path takes no lock.
type Server struct {
	log  *slog.Logger
	zone atomic.Pointer[Zone]
	udp  *mdns.Server
	tcp  *mdns.Server
}

// NewServer returns a server that answers SERVFAIL until the first Update.
func NewServer(log *slog.Logger) *Server { return &Server{log: log} }

// Update makes z the zone every later answer comes from.
func (s *Server) Update(z *Zone) { s.zone.Store(z) }

// ServeDNS implements mdns.Handler.
func (s *Server) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	_, isTCP := w.RemoteAddr().(*net.TCPAddr)
	if err := w.WriteMsg(s.answer(req, isTCP)); err != nil {
		s.log.Debug("dns: write answer failed", "err", err)
	}
}

// answer builds the response to req: authoritative, never recursive, REFUSED outside the zone,
// NXDOMAIN for names that do not exist and NODATA for names without records of the type asked.
// Over UDP the answer is cut to the client's buffer size with TC set; TCP gets it whole.
func (s *Server) answer(req *mdns.Msg, isTCP bool) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetReply(req)
	m.Authoritative, m.RecursionAvailable = true, false
	switch {
	case req.Opcode != mdns.OpcodeQuery:
		return m.SetRcode(req, mdns.RcodeNotImplemented)
	case len(req.Question) != 1:
		return m.SetRcode(req, mdns.RcodeFormatError)
	}
	q := req.Question[0]
	z := s.zone.Load()
	name := strings.ToLower(q.Name)
	switch {
	case z == nil:
		return m.SetRcode(req, mdns.RcodeServerFailure)
	case q.Qclass != mdns.ClassINET && q.Qclass != mdns.ClassANY, !z.inZone(name):
		m.Authoritative = false
		return m.SetRcode(req, mdns.RcodeRefused)
	}
	rrs, exists := z.lookup(name, q.Qtype)
	switch {
	case !exists:
		m.SetRcode(req, mdns.RcodeNameError)
		m.Ns = []mdns.RR{z.soa()}
	case len(rrs) == 0:
		m.Ns = []mdns.RR{z.soa()}
	default:
		for _, rr := range rrs {
			rr.Header().Name = q.Name // answer in the case the client asked
		}
		m.Answer = rrs
		m.Extra = glue(z, rrs)
	}
	size := mdns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = max(size, int(opt.UDPSize()))
		m.SetEdns0(opt.UDPSize(), false)
	}
	if isTCP {
		size = mdns.MaxMsgSize
	}
	m.Truncate(size)
	return m
}

// glue adds the addresses of SRV targets, so a client needs one query.
func glue(z *Zone, rrs []mdns.RR) []mdns.RR {
	var extra []mdns.RR
	seen := map[string]bool{}
	for _, rr := range rrs {
		srv, ok := rr.(*mdns.SRV)
		if !ok || seen[srv.Target] {
			continue
		}
		seen[srv.Target] = true
		a, _ := z.lookup(srv.Target, mdns.TypeA)
		aaaa, _ := z.lookup(srv.Target, mdns.TypeAAAA)
		extra = append(append(extra, a...), aaaa...)
	}
	return extra
}

// ListenAndServe serves UDP and TCP on addr until ctx ends. It returns once both listeners
// are up, or with the error that kept one from starting.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("dns: listen udp %s: %w", addr, err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		return fmt.Errorf("dns: listen tcp %s: %w", addr, err)
	}
	s.udp = &mdns.Server{PacketConn: pc, Handler: s}
	s.tcp = &mdns.Server{Listener: ln, Handler: s}
	for _, srv := range []*mdns.Server{s.udp, s.tcp} {
		go func() {
			if err := srv.ActivateAndServe(); err != nil && !errors.Is(err, net.ErrClosed) {
				s.log.Warn("dns server stopped", "err", err)
			}
		}()
	}
	go func() {
		<-ctx.Done()
		s.udp.Shutdown()
		s.tcp.Shutdown()
	}()
	return nil
}

// Addr is the address the server listens on (UDP and TCP share it).
func (s *Server) Addr() string { return s.udp.PacketConn.LocalAddr().String() }
