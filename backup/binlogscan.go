package backup

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// The agent reads closed binlog files from disk rather than through mysqlbinlog
// --read-from-remote-server: it runs beside the server, a closed file never changes, and reading
// the event headers itself gives each transaction's GTID, time and byte range without a second
// program to install, configure with credentials and parse the text output of. Only the few
// event types below are decoded; every other event is skipped by its length.

// Binlog event types this scanner decodes (both flavors share the v4 header).
const (
	evStop          = 3
	evRotate        = 4
	evFormatDesc    = 15
	evMySQLGTID     = 33
	evMySQLAnonGTID = 34
	evPreviousGTIDs = 35
	evMySQLTagged   = 42
	evMariaGTID     = 162
	evMariaGTIDList = 163
)

const (
	binlogMagic     = "\xfebin"
	eventHeaderSize = 19
	// maxDecodedEvent bounds the events whose body is read into memory (the header events and
	// GTID events are tiny; a GTID list has one entry per domain and server).
	maxDecodedEvent = 1 << 20
)

// ErrBinlogFormat marks a binlog file this scanner cannot read: truncated, not a binlog, or
// holding transactions it cannot name (anonymous or tagged GTIDs).
var ErrBinlogFormat = errors.New("unreadable binlog")

// BinlogTxn is one transaction of a binlog file: its GTID (MySQL "uuid:n", MariaDB
// "domain-server-seqno"), the byte range of its events and the time of its GTID event (the
// server stamps it when the transaction starts, in whole seconds, as mysqlbinlog's
// --stop-datetime sees it).
type BinlogTxn struct {
	GTID       string
	Start, End int64
	Time       time.Time
}

// BinlogScan is what one binlog file holds.
type BinlogScan struct {
	// Before is the server's GTID state when the file was opened (MySQL's Previous_gtids,
	// MariaDB's Gtid_list); After is Before with every transaction of the file added.
	Before, After gtid.Set
	// First and Last are its first and last transactions; Txns counts them.
	First, Last BinlogTxn
	Txns        int
	Size        int64
}

// ScanBinlog reads a whole binlog file of the flavor from r and calls each (when not nil) for
// every transaction in order.
func ScanBinlog(r io.Reader, flavor gtid.Flavor, each func(BinlogTxn) error) (*BinlogScan, error) {
	s := &scanner{r: bufio.NewReaderSize(r, 64<<10), flavor: flavor, mysql: map[string][][2]uint64{}, maria: map[[2]uint32]uint64{}}
	if err := s.run(each); err != nil {
		return nil, fmt.Errorf("%w: at byte %d: %w", ErrBinlogFormat, s.pos, err)
	}
	return &s.out, nil
}

type scanner struct {
	r      *bufio.Reader
	flavor gtid.Flavor
	pos    int64
	out    BinlogScan
	seenFD bool
	before string
	open   *BinlogTxn // the transaction being read, ended by the next GTID, a rotate or the end
	// What the file adds to Before: MySQL intervals per UUID, MariaDB the top seqno per (domain, server).
	mysql map[string][][2]uint64
	maria map[[2]uint32]uint64
}

func (s *scanner) run(each func(BinlogTxn) error) error {
	if s.flavor != gtid.MySQL && s.flavor != gtid.MariaDB {
		return fmt.Errorf("unknown flavor %q", s.flavor)
	}
	magic := make([]byte, len(binlogMagic))
	if _, err := io.ReadFull(s.r, magic); err != nil || string(magic) != binlogMagic {
		return errors.New("no binlog magic number at the start")
	}
	s.pos = int64(len(binlogMagic))
	hdr := make([]byte, eventHeaderSize)
	for {
		start := s.pos
		n, err := io.ReadFull(s.r, hdr)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("event header: %d of %d bytes: the file is truncated", n, eventHeaderSize)
		}
		typ, size := hdr[4], int64(binary.LittleEndian.Uint32(hdr[9:13]))
		if size < eventHeaderSize {
			return fmt.Errorf("event of type %d says it has %d bytes", typ, size)
		}
		ts := time.Unix(int64(binary.LittleEndian.Uint32(hdr[0:4])), 0).UTC()
		server := binary.LittleEndian.Uint32(hdr[5:9])
		bodySize := size - eventHeaderSize
		s.pos += eventHeaderSize
		if !s.decoded(typ) {
			if k, err := io.CopyN(io.Discard, s.r, bodySize); err != nil {
				return fmt.Errorf("event of type %d: %d of %d bytes: the file is truncated", typ, k, bodySize)
			}
			s.pos += bodySize
			if typ == evRotate || typ == evStop {
				if err := s.end(start, each); err != nil {
					return err
				}
			}
			continue
		}
		if bodySize > maxDecodedEvent {
			return fmt.Errorf("event of type %d has %d bytes, more than such an event can", typ, size)
		}
		body := make([]byte, bodySize)
		if k, err := io.ReadFull(s.r, body); err != nil {
			return fmt.Errorf("event of type %d: %d of %d bytes: the file is truncated", typ, k, bodySize)
		}
		s.pos += bodySize
		if err := s.event(typ, start, ts, server, body, each); err != nil {
			return err
		}
	}
	if !s.seenFD {
		return errors.New("no format description event")
	}
	if err := s.end(s.pos, each); err != nil {
		return err
	}
	s.out.Size = s.pos
	return s.finish()
}

func (s *scanner) decoded(typ byte) bool {
	switch typ {
	case evFormatDesc, evMySQLGTID, evMySQLAnonGTID, evMySQLTagged, evPreviousGTIDs, evMariaGTID, evMariaGTIDList:
		return true
	}
	return false
}

func (s *scanner) event(typ byte, start int64, ts time.Time, server uint32, body []byte, each func(BinlogTxn) error) error {
	switch typ {
	case evFormatDesc:
		// binlog_version(2) server_version(50) create_timestamp(4) header_length(1)
		if len(body) < 57 || binary.LittleEndian.Uint16(body) != 4 || body[56] != eventHeaderSize {
			return errors.New("format description: not a v4 binlog with 19-byte event headers")
		}
		version := strings.TrimRight(string(body[2:52]), "\x00")
		if isMaria := strings.Contains(version, "MariaDB"); isMaria != (s.flavor == gtid.MariaDB) {
			return fmt.Errorf("format description: written by server %s, not %s", version, s.flavor)
		}
		s.seenFD = true
	case evPreviousGTIDs:
		if s.flavor != gtid.MySQL {
			return errors.New("a MySQL Previous_gtids event in a MariaDB binlog")
		}
		before, err := decodePreviousGTIDs(body)
		if err != nil {
			return fmt.Errorf("previous GTIDs: %w", err)
		}
		s.before = before
	case evMariaGTIDList:
		if s.flavor != gtid.MariaDB {
			return errors.New("a MariaDB Gtid_list event in a MySQL binlog")
		}
		before, err := decodeGTIDList(body)
		if err != nil {
			return fmt.Errorf("GTID list: %w", err)
		}
		s.before = before
	case evMySQLAnonGTID:
		return errors.New("an anonymous transaction: archiving needs gtid_mode=ON")
	case evMySQLTagged:
		return errors.New("a tagged GTID: not supported by the binlog archive yet")
	case evMySQLGTID:
		if s.flavor != gtid.MySQL || len(body) < 25 {
			return errors.New("a short or misplaced MySQL GTID event")
		}
		if err := s.end(start, each); err != nil {
			return err
		}
		uuid := formatUUID(body[1:17])
		gno := binary.LittleEndian.Uint64(body[17:25])
		if gno == 0 {
			return errors.New("a GTID with sequence number 0")
		}
		s.mysql[uuid] = addGNO(s.mysql[uuid], gno)
		s.open = &BinlogTxn{GTID: uuid + ":" + strconv.FormatUint(gno, 10), Start: start, Time: ts}
	case evMariaGTID:
		if s.flavor != gtid.MariaDB || len(body) < 12 {
			return errors.New("a short or misplaced MariaDB GTID event")
		}
		if err := s.end(start, each); err != nil {
			return err
		}
		seq, domain := binary.LittleEndian.Uint64(body[0:8]), binary.LittleEndian.Uint32(body[8:12])
		key := [2]uint32{domain, server}
		s.maria[key] = max(s.maria[key], seq)
		s.open = &BinlogTxn{GTID: fmt.Sprintf("%d-%d-%d", domain, server, seq), Start: start, Time: ts}
	}
	return nil
}

// end closes the open transaction at pos.
func (s *scanner) end(pos int64, each func(BinlogTxn) error) error {
	if s.open == nil {
		return nil
	}
	t := *s.open
	t.End, s.open = pos, nil
	if s.out.Txns == 0 {
		s.out.First = t
	}
	s.out.Last = t
	s.out.Txns++
	if each != nil {
		return each(t)
	}
	return nil
}

func (s *scanner) finish() error {
	before, err := gtid.Parse(s.flavor, s.before)
	if err != nil {
		return fmt.Errorf("the GTID state at the start: %w", err)
	}
	var added []string
	if s.flavor == gtid.MySQL {
		for _, uuid := range slices.Sorted(maps.Keys(s.mysql)) {
			var b strings.Builder
			b.WriteString(uuid)
			for _, iv := range s.mysql[uuid] {
				fmt.Fprintf(&b, ":%d-%d", iv[0], iv[1])
			}
			added = append(added, b.String())
		}
	} else {
		for _, k := range slices.SortedFunc(maps.Keys(s.maria), func(a, b [2]uint32) int { return slices.Compare(a[:], b[:]) }) {
			added = append(added, fmt.Sprintf("%d-%d-%d", k[0], k[1], s.maria[k]))
		}
	}
	adds, err := gtid.Parse(s.flavor, strings.Join(added, ","))
	if err != nil {
		return fmt.Errorf("the file's transactions: %w", err)
	}
	after, err := before.Union(adds)
	if err != nil {
		return err
	}
	s.out.Before, s.out.After = before, after
	return nil
}

// addGNO adds gno to sorted closed intervals, extending the last one when it follows it (the
// usual case: a server's GTIDs grow by one).
func addGNO(ivs [][2]uint64, gno uint64) [][2]uint64 {
	if n := len(ivs); n > 0 && ivs[n-1][1]+1 == gno {
		ivs[n-1][1] = gno
		return ivs
	}
	return append(ivs, [2]uint64{gno, gno})
}

func formatUUID(b []byte) string {
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// decodePreviousGTIDs reads MySQL's binary GTID set: n_sids(8), then per UUID the UUID(16),
// n_intervals(8) and each interval as start(8) and end(8, exclusive).
func decodePreviousGTIDs(b []byte) (string, error) {
	if len(b) < 8 {
		return "", errors.New("short event")
	}
	n := binary.LittleEndian.Uint64(b)
	if n>>56 != 0 {
		return "", errors.New("tagged GTID set encoding: not supported by the binlog archive yet")
	}
	b = b[8:]
	var parts []string
	for range n {
		if len(b) < 24 {
			return "", errors.New("short event")
		}
		uuid, k := formatUUID(b[:16]), binary.LittleEndian.Uint64(b[16:24])
		b = b[24:]
		if k > uint64(len(b))/16 {
			return "", errors.New("short event")
		}
		var sb strings.Builder
		sb.WriteString(uuid)
		for range k {
			lo, hi := binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])
			b = b[16:]
			if lo == 0 || hi <= lo {
				return "", fmt.Errorf("interval [%d, %d) of %s", lo, hi, uuid)
			}
			fmt.Fprintf(&sb, ":%d-%d", lo, hi-1)
		}
		parts = append(parts, sb.String())
	}
	return strings.Join(parts, ","), nil
}

// decodeGTIDList reads MariaDB's Gtid_list: a count (low 28 bits) then domain(4) server(4)
// seqno(8) each.
func decodeGTIDList(b []byte) (string, error) {
	if len(b) < 4 {
		return "", errors.New("short event")
	}
	n := binary.LittleEndian.Uint32(b) & (1<<28 - 1)
	b = b[4:]
	if uint64(n) > uint64(len(b))/16 {
		return "", errors.New("short event")
	}
	parts := make([]string, 0, n)
	for range n {
		parts = append(parts, fmt.Sprintf("%d-%d-%d", binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint64(b[8:])))
		b = b[16:]
	}
	return strings.Join(parts, ","), nil
}
