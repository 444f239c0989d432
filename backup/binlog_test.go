package backup

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

const (
	uuidA = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	uuidB = "4f22ab58-82db-22f2-af44-d91bb0530673"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// at is t0 plus s seconds.
func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

// file is an archived file's manifest for table tests; first and last are its transactions'
// times in seconds after t0.
func file(flavor gtid.Flavor, member, name, before, after string, first, last int) *BinlogManifest {
	return &BinlogManifest{Format: 1, Cluster: "c1", Member: member, Flavor: flavor, File: name, Size: 1000,
		SHA256: strings.Repeat(fmt.Sprintf("%x", len(name+member+after)%16), 64), GTIDBefore: before, GTIDAfter: after,
		FirstTime: at(first), LastTime: at(last), Transactions: 1, ArchivedAt: at(last + 1)}
}

// wantAbandoned are TestPlanReplay's lost branches, by case.
var wantAbandoned = map[string][]string{
	"diverged: the later history":                        {"db1/binlog.000001", "db1/binlog.000002"},
	"diverged: mariadb seqnos reused by the new primary": {"db1/binlog.000001"},
	"diverged: the higher epoch":                         {"db1/binlog.000001"},
}

// withEpoch is a copy of f archived in epoch, skew hours after its last transaction.
func withEpoch(f *BinlogManifest, epoch uint64, skew int) *BinlogManifest {
	c := *f
	c.Epoch, c.ArchivedAt = epoch, f.LastTime.Add(time.Duration(skew)*time.Hour)
	return &c
}

func TestPlanReplay(t *testing.T) {
	my, ma := gtid.MySQL, gtid.MariaDB
	f1 := file(my, "db1", "binlog.000001", "", uuidA+":1-10", 1, 10)
	f2 := file(my, "db1", "binlog.000002", uuidA+":1-10", uuidA+":1-20", 11, 20)
	f3 := file(my, "db1", "binlog.000003", uuidA+":1-20", uuidA+":1-30", 21, 30)
	// db2 took over after A:12, with A:1-5 before its file: it overlaps f1 and f2.
	g := file(my, "db2", "binlog.000007", uuidA+":1-5", uuidA+":1-12,"+uuidB+":1-3", 6, 14)
	m1 := file(ma, "db1", "binlog.000001", "", "0-1-10", 1, 10)
	m2 := file(ma, "db2", "binlog.000002", "0-1-8", "0-1-10,0-2-15", 9, 15)
	x := file(my, "db1", "binlog.000001", uuidA+":1-5", uuidA+":1-12", 6, 12)
	x2 := file(my, "db1", "binlog.000002", uuidA+":1-12", uuidA+":1-14", 13, 14)
	y := file(my, "db2", "binlog.000007", uuidA+":1-5", uuidA+":1-10,"+uuidB+":1-3", 6, 16)
	y2 := file(my, "db2", "binlog.000008", uuidA+":1-10,"+uuidB+":1-3", uuidA+":1-10,"+uuidB+":1-8", 17, 20)
	mx := file(ma, "db1", "binlog.000001", "0-1-5", "0-1-12", 6, 12)
	my1 := file(ma, "db2", "binlog.000002", "0-1-5", "0-1-10,0-2-11", 6, 16)
	cases := []struct {
		name   string
		flavor gtid.Flavor
		from   string
		files  []*BinlogManifest
		target BinlogTarget
		want   []string // member/file of each step
		err    string
	}{
		{"linear to the latest", my, uuidA + ":1-5", []*BinlogManifest{f2, f1}, BinlogTarget{}, []string{"db1/binlog.000001", "db1/binlog.000002"}, ""},
		{"files the backup holds are skipped", my, uuidA + ":1-12", []*BinlogManifest{f1, f2, f3}, BinlogTarget{}, []string{"db1/binlog.000002", "db1/binlog.000003"}, ""},
		{"backup past every file", my, uuidA + ":1-30", []*BinlogManifest{f1, f2}, BinlogTarget{}, nil, ""},
		{"gap before the latest", my, uuidA + ":1-5", []*BinlogManifest{f1, f3}, BinlogTarget{}, nil, "gap"},
		{"gap after the target time", my, uuidA + ":1-5", []*BinlogManifest{f1, f3}, BinlogTarget{Time: at(5)}, []string{"db1/binlog.000001"}, ""},
		{"gap before the target time", my, uuidA + ":1-5", []*BinlogManifest{f1, f3}, BinlogTarget{Time: at(25)}, nil, "gap"},
		{"time within the second file", my, "", []*BinlogManifest{f1, f2, f3}, BinlogTarget{Time: at(15)}, []string{"db1/binlog.000001", "db1/binlog.000002"}, ""},
		{"time before every file", my, "", []*BinlogManifest{f1, f2}, BinlogTarget{Time: at(0)}, nil, ""},
		{"failover: the file reaching furthest", my, uuidA + ":1-5", []*BinlogManifest{f1, g}, BinlogTarget{}, []string{"db2/binlog.000007"}, ""},
		{"failover then the old primary's later file", my, uuidA + ":1-5", []*BinlogManifest{f1, g, f2}, BinlogTarget{}, []string{"db2/binlog.000007", "db1/binlog.000002"}, ""},
		{"failover file not reachable yet", my, uuidA + ":1-2", []*BinlogManifest{f1, g}, BinlogTarget{}, []string{"db1/binlog.000001", "db2/binlog.000007"}, ""},
		{"gtid in the second file", my, uuidA + ":1-5", []*BinlogManifest{f1, f2, f3}, BinlogTarget{GTID: uuidA + ":15"}, []string{"db1/binlog.000001", "db1/binlog.000002"}, ""},
		{"gtid in the backup", my, uuidA + ":1-5", []*BinlogManifest{f1}, BinlogTarget{GTID: uuidA + ":3"}, nil, "already in the backup"},
		{"gtid never archived", my, uuidA + ":1-5", []*BinlogManifest{f1}, BinlogTarget{GTID: uuidA + ":99"}, nil, "not in the binlog archive"},
		{"gtid after a gap", my, uuidA + ":1-5", []*BinlogManifest{f1, f3}, BinlogTarget{GTID: uuidA + ":25"}, nil, "gap"},
		{"gtid set, not one", my, "", []*BinlogManifest{f1}, BinlogTarget{GTID: uuidA + ":1-3"}, nil, "want one transaction"},
		{"files of the other flavor ignored", my, uuidA + ":1-5", []*BinlogManifest{f1, m1}, BinlogTarget{}, []string{"db1/binlog.000001"}, ""},
		{"mariadb across servers of a domain", ma, "0-1-5", []*BinlogManifest{m2, m1}, BinlogTarget{GTID: "0-2-12"}, []string{"db1/binlog.000001", "db2/binlog.000002"}, ""},
		{"mariadb position of the new primary covers the old one's", ma, "0-2-12", []*BinlogManifest{m1, m2}, BinlogTarget{}, []string{"db2/binlog.000002"}, ""},
		{"mariadb gap", ma, "0-1-5", []*BinlogManifest{m2}, BinlogTarget{}, nil, "gap"},
		// Divergence: db1 archived A:11-12 that db2, promoted at A:10, never got; db1's next
		// file continues that lost branch. db2's history is the one replayed, with no gap.
		{"diverged: the later history", my, uuidA + ":1-5", []*BinlogManifest{x, x2, y, y2}, BinlogTarget{}, []string{"db2/binlog.000007", "db2/binlog.000008"}, ""},
		{"diverged: mariadb seqnos reused by the new primary", ma, "0-1-5", []*BinlogManifest{mx, my1}, BinlogTarget{}, []string{"db2/binlog.000002"}, ""},
		// The epochs order the primaries although db1's clock ran ahead.
		{"diverged: the higher epoch", my, uuidA + ":1-5", []*BinlogManifest{withEpoch(x, 3, 100), withEpoch(y, 4, 0)}, BinlogTarget{}, []string{"db2/binlog.000007"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			steps, abandoned, err := PlanReplay(c.flavor, gtid.MustParse(c.flavor, c.from), c.files, c.target)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %v, want an error containing %q", err, c.err)
				}
				if c.err == "gap" && !errors.Is(err, ErrGap) {
					t.Fatalf("got %v, want ErrGap", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range steps {
				got = append(got, s.File.Member+"/"+s.File.File)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("steps %v, want %v", got, c.want)
			}
			// What is neither replayed nor covered by the replay must be a lost branch.
			var lost []string
			for _, f := range abandoned {
				lost = append(lost, f.Member+"/"+f.File)
			}
			if want := wantAbandoned[c.name]; fmt.Sprint(lost) != fmt.Sprint(want) {
				t.Fatalf("abandoned %v, want %v", lost, want)
			}
		})
	}
}

func TestCutTxns(t *testing.T) {
	txns := []BinlogTxn{
		{GTID: uuidA + ":4", Start: 100, End: 200, Time: at(1)},
		{GTID: uuidA + ":5", Start: 200, End: 300, Time: at(2)},
		{GTID: uuidA + ":6", Start: 300, End: 400, Time: at(3)},
		{GTID: uuidA + ":7", Start: 400, End: 500, Time: at(4)},
	}
	cases := []struct {
		name          string
		covered       string
		target        BinlogTarget
		txns          []BinlogTxn
		start, end, n int
		done          bool
		err           string
	}{
		{"all", uuidA + ":1-3", BinlogTarget{}, txns, 100, 500, 4, false, ""},
		{"covered prefix skipped", uuidA + ":1-5", BinlogTarget{}, txns, 300, 500, 2, false, ""},
		{"all covered", uuidA + ":1-9", BinlogTarget{}, txns, 0, 0, 0, false, ""},
		{"time stops before a later one", uuidA + ":1-3", BinlogTarget{Time: at(2)}, txns, 100, 300, 2, true, ""},
		{"time includes its own second", uuidA + ":1-3", BinlogTarget{Time: at(3).Add(500 * time.Millisecond)}, txns, 100, 400, 3, true, ""},
		{"gtid stops after it", uuidA + ":1-4", BinlogTarget{GTID: uuidA + ":6"}, txns, 200, 400, 2, true, ""},
		{"covered after one to replay", uuidA + ":1-3:6", BinlogTarget{}, txns, 0, 0, 0, false, "not one history"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start, end, n, done, err := cutTxns(gtid.MySQL, gtid.MustParse(gtid.MySQL, c.covered), c.target, c.txns)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || start != int64(c.start) || end != int64(c.end) || n != c.n || done != c.done {
				t.Fatalf("got [%d, %d) %d done=%v err=%v; want [%d, %d) %d done=%v", start, end, n, done, err, c.start, c.end, c.n, c.done)
			}
		})
	}
	// MariaDB: the target's seqno written by another server of the domain ends the replay too.
	ma := []BinlogTxn{{GTID: "0-1-4", Start: 10, End: 20, Time: at(1)}, {GTID: "0-2-5", Start: 20, End: 30, Time: at(2)}, {GTID: "0-2-6", Start: 30, End: 40, Time: at(3)}}
	start, end, n, done, err := cutTxns(gtid.MariaDB, gtid.MustParse(gtid.MariaDB, "0-1-4"), BinlogTarget{GTID: "0-1-5"}, ma)
	if err != nil || start != 20 || end != 30 || n != 1 || !done {
		t.Fatalf("mariadb: got [%d, %d) %d done=%v err=%v", start, end, n, done, err)
	}
}

func TestShouldFlush(t *testing.T) {
	f := binlogFile{Name: "binlog.000003", Size: 500}
	cases := []struct {
		name  string
		every time.Duration
		last  flushState
		now   time.Time
		want  bool
	}{
		{"off", 0, flushState{file: binlogFile{"binlog.000003", 100}, at: at(0)}, at(600), false},
		{"due", time.Minute, flushState{file: binlogFile{"binlog.000003", 100}, at: at(0)}, at(60), true},
		{"not yet", time.Minute, flushState{file: binlogFile{"binlog.000003", 100}, at: at(0)}, at(59), false},
		{"nothing new", time.Minute, flushState{file: f, at: at(0)}, at(600), false},
		{"another file now", time.Minute, flushState{file: binlogFile{"binlog.000002", 100}, at: at(0)}, at(600), false},
		{"never seen", time.Minute, flushState{}, at(600), false},
	}
	for _, c := range cases {
		if got, why := shouldFlush(c.now, c.every, c.last, f); got != c.want || why == "" {
			t.Errorf("%s: got %v (%q), want %v", c.name, got, why, c.want)
		}
	}
}

// binlogBuilder writes synthetic binlog files: the header events a server writes and
// transactions of a GTID event and one other event each.
type binlogBuilder struct {
	flavor gtid.Flavor
	buf    bytes.Buffer
}

func newBinlog(flavor gtid.Flavor) *binlogBuilder {
	b := &binlogBuilder{flavor: flavor}
	b.buf.WriteString(binlogMagic)
	fd := make([]byte, 57+1)
	binary.LittleEndian.PutUint16(fd, 4)
	version := "9.7.0"
	if flavor == gtid.MariaDB {
		version = "10.11.6-MariaDB-0+deb12u1-log"
	}
	copy(fd[2:52], version)
	fd[56] = eventHeaderSize
	b.event(evFormatDesc, 0, 1, fd)
	return b
}

func (b *binlogBuilder) event(typ byte, ts int, server uint32, body []byte) {
	hdr := make([]byte, eventHeaderSize)
	binary.LittleEndian.PutUint32(hdr, uint32(at(ts).Unix()))
	hdr[4] = typ
	binary.LittleEndian.PutUint32(hdr[5:], server)
	binary.LittleEndian.PutUint32(hdr[9:], uint32(eventHeaderSize+len(body)))
	binary.LittleEndian.PutUint32(hdr[13:], uint32(b.buf.Len()+eventHeaderSize+len(body)))
	b.buf.Write(hdr)
	b.buf.Write(body)
}

// previous writes MySQL's Previous_gtids for uuid:1-n (nothing when n is 0).
func (b *binlogBuilder) previous(uuid string, n uint64) {
	body := make([]byte, 8)
	if n > 0 {
		binary.LittleEndian.PutUint64(body, 1)
		raw, _ := hex.DecodeString(strings.ReplaceAll(uuid, "-", ""))
		body = append(body, raw...)
		body = binary.LittleEndian.AppendUint64(body, 1)
		body = binary.LittleEndian.AppendUint64(body, 1)
		body = binary.LittleEndian.AppendUint64(body, n+1)
	}
	b.event(evPreviousGTIDs, 0, 1, body)
}

// gtidList writes MariaDB's Gtid_list of domain-server-seq entries.
func (b *binlogBuilder) gtidList(entries ...[3]uint64) {
	body := binary.LittleEndian.AppendUint32(nil, uint32(len(entries)))
	for _, e := range entries {
		body = binary.LittleEndian.AppendUint32(body, uint32(e[0]))
		body = binary.LittleEndian.AppendUint32(body, uint32(e[1]))
		body = binary.LittleEndian.AppendUint64(body, e[2])
	}
	b.event(evMariaGTIDList, 0, 1, body)
}

// txn writes one transaction: MySQL uuid:seq, or MariaDB domain-server-seq.
func (b *binlogBuilder) txn(ts int, uuid string, domain, server uint32, seq uint64) {
	if b.flavor == gtid.MySQL {
		raw, _ := hex.DecodeString(strings.ReplaceAll(uuid, "-", ""))
		body := append([]byte{1}, raw...)
		body = binary.LittleEndian.AppendUint64(body, seq)
		b.event(evMySQLGTID, ts, server, append(body, make([]byte, 30)...))
	} else {
		body := binary.LittleEndian.AppendUint64(nil, seq)
		body = binary.LittleEndian.AppendUint32(body, domain)
		b.event(evMariaGTID, ts, server, append(body, 0))
	}
	b.event(2, ts, server, []byte("a query event's body")) // QUERY_EVENT, skipped by its length
}

func (b *binlogBuilder) rotate() []byte {
	b.event(evRotate, 0, 1, append(make([]byte, 8), "binlog.000009"...))
	return b.buf.Bytes()
}

func TestScanBinlog(t *testing.T) {
	my := newBinlog(gtid.MySQL)
	my.previous(uuidA, 3)
	my.txn(10, uuidA, 0, 1, 4)
	my.txn(11, uuidA, 0, 1, 5)
	my.txn(12, uuidB, 0, 2, 1)
	myFile := my.rotate()
	var txns []BinlogTxn
	scan, err := ScanBinlog(bytes.NewReader(myFile), gtid.MySQL, func(t BinlogTxn) error { txns = append(txns, t); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if scan.Before.String() != uuidA+":1-3" || scan.After.String() != uuidA+":1-5,"+uuidB+":1" || scan.Txns != 3 ||
		scan.First.GTID != uuidA+":4" || scan.Last.GTID != uuidB+":1" || !scan.First.Time.Equal(at(10)) || !scan.Last.Time.Equal(at(12)) ||
		scan.Size != int64(len(myFile)) {
		t.Fatalf("scan: %+v", scan)
	}
	for i := 1; i < len(txns); i++ {
		if txns[i].Start != txns[i-1].End || txns[i].End <= txns[i].Start {
			t.Fatalf("transactions not back to back: %+v", txns)
		}
	}
	if last := txns[len(txns)-1]; last.End >= int64(len(myFile)) {
		t.Fatalf("the last transaction runs into the rotate event: %+v", last)
	}

	ma := newBinlog(gtid.MariaDB)
	ma.gtidList([3]uint64{0, 1, 7}, [3]uint64{1, 1, 2})
	ma.txn(20, "", 0, 2, 8)
	ma.txn(21, "", 1, 1, 3)
	scan, err = ScanBinlog(bytes.NewReader(ma.rotate()), gtid.MariaDB, nil)
	if err != nil {
		t.Fatal(err)
	}
	if scan.Before.String() != "0-1-7,1-1-2" || scan.After.String() != "0-1-7,0-2-8,1-1-3" || scan.First.GTID != "0-2-8" || scan.Last.GTID != "1-1-3" {
		t.Fatalf("scan: %+v", scan)
	}

	for name, bad := range map[string][]byte{
		"truncated":      myFile[:len(myFile)-5],
		"no magic":       myFile[1:],
		"other flavor":   ma.buf.Bytes(),
		"empty":          nil,
		"magic only":     []byte(binlogMagic),
		"tiny event":     append([]byte(binlogMagic), make([]byte, eventHeaderSize)...),
		"anonymous gtid": anonymous(),
	} {
		if _, err := ScanBinlog(bytes.NewReader(bad), gtid.MySQL, nil); !errors.Is(err, ErrBinlogFormat) {
			t.Errorf("%s: got %v, want ErrBinlogFormat", name, err)
		}
	}
}

func anonymous() []byte {
	b := newBinlog(gtid.MySQL)
	b.previous("", 0)
	b.event(evMySQLAnonGTID, 1, 1, make([]byte, 40))
	return b.rotate()
}

func FuzzScanBinlog(f *testing.F) {
	my := newBinlog(gtid.MySQL)
	my.previous(uuidA, 3)
	my.txn(10, uuidA, 0, 1, 4)
	f.Add(my.rotate(), false)
	ma := newBinlog(gtid.MariaDB)
	ma.gtidList([3]uint64{0, 1, 7})
	ma.txn(20, "", 0, 2, 8)
	f.Add(ma.rotate(), true)
	f.Fuzz(func(t *testing.T, b []byte, maria bool) {
		flavor := gtid.MySQL
		if maria {
			flavor = gtid.MariaDB
		}
		var last int64
		scan, err := ScanBinlog(bytes.NewReader(b), flavor, func(t BinlogTxn) error {
			if t.Start < last || t.End <= t.Start {
				return fmt.Errorf("transaction %+v after byte %d", t, last)
			}
			last = t.End
			return nil
		})
		if err != nil {
			if !errors.Is(err, ErrBinlogFormat) {
				t.Fatalf("error %v is not ErrBinlogFormat", err)
			}
			return
		}
		if !covers(flavor, scan.After, scan.Before) || scan.Size != int64(len(b)) || last > scan.Size {
			t.Fatalf("scan %+v of %d bytes", scan, len(b))
		}
	})
}

func FuzzParseBinlogManifest(f *testing.F) {
	good := file(gtid.MySQL, "db1", "binlog.000002", uuidA+":1-10", uuidA+":1-20", 11, 20)
	good.FirstGTID, good.LastGTID = uuidA+":11", uuidA+":20"
	b, err := good.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	ma := file(gtid.MariaDB, "db2", "mariadb-bin.000123", "0-1-8", "0-1-10,0-2-15", 9, 15)
	ma.FirstGTID, ma.LastGTID = "0-1-9", "0-2-15"
	if b, err = ma.Marshal(); err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"format":1}`))
	f.Add([]byte(`{} {}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseBinlogManifest(b)
		if err != nil {
			return
		}
		again, err := m.Marshal()
		if err != nil {
			t.Fatalf("a parsed manifest does not marshal: %v", err)
		}
		m2, err := ParseBinlogManifest(again)
		if err != nil {
			t.Fatalf("a marshalled manifest does not parse: %v", err)
		}
		if k := m.ObjectKey(); k != m2.ObjectKey() || !strings.HasPrefix(k, m.Cluster+"/binlogs/"+m.Member+"/") || strings.Contains(k, "/../") || strings.Count(k, "/") != 3 {
			t.Fatalf("keys %q and %q", m.ObjectKey(), m2.ObjectKey())
		}
	})
}

func TestBinlogManifestChecks(t *testing.T) {
	ok := func() *BinlogManifest {
		m := file(gtid.MySQL, "db1", "binlog.000002", uuidA+":1-10", uuidA+":1-20", 11, 20)
		m.FirstGTID, m.LastGTID = uuidA+":11", uuidA+":20"
		return m
	}
	if _, err := ok().Marshal(); err != nil {
		t.Fatal(err)
	}
	for name, spoil := range map[string]func(*BinlogManifest){
		"format":           func(m *BinlogManifest) { m.Format = 2 },
		"member":           func(m *BinlogManifest) { m.Member = "../x" },
		"file":             func(m *BinlogManifest) { m.File = "../../etc/passwd" },
		"sha":              func(m *BinlogManifest) { m.SHA256 = "abc" },
		"no transactions":  func(m *BinlogManifest) { m.Transactions = 0 },
		"times":            func(m *BinlogManifest) { m.LastTime = at(0) },
		"adds nothing":     func(m *BinlogManifest) { m.GTIDAfter = m.GTIDBefore },
		"first before":     func(m *BinlogManifest) { m.FirstGTID = uuidA + ":5" },
		"last outside":     func(m *BinlogManifest) { m.LastGTID = uuidA + ":21" },
		"last not one":     func(m *BinlogManifest) { m.LastGTID = uuidA + ":19-20" },
		"flavor":           func(m *BinlogManifest) { m.Flavor = "postgres" },
		"cluster":          func(m *BinlogManifest) { m.Cluster = "a/b" },
		"after not before": func(m *BinlogManifest) { m.GTIDBefore = uuidB + ":1" },
	} {
		m := ok()
		spoil(m)
		b, _ := jsonOf(m)
		if _, err := ParseBinlogManifest(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// jsonOf encodes a manifest without Marshal's checks, as a damaged or foreign one would be.
func jsonOf(m *BinlogManifest) ([]byte, error) { return json.Marshal(m) }

func TestBackupFor(t *testing.T) {
	backupAt := func(id string, end int, pos, max string, valid bool) Entry {
		return Entry{ID: id, Valid: valid, Manifest: &Manifest{ID: id, Flavor: gtid.MySQL, EndTime: at(end), GTIDExecuted: pos, GTIDExecutedMax: max}}
	}
	entries := []Entry{
		backupAt("b1", 10, uuidA+":1-10", "", true),
		backupAt("b2", 20, uuidA+":1-20", uuidA+":1-22", true),
		backupAt("b3", 30, uuidA+":1-30", "", false),
		{ID: "b4"}, // incomplete
	}
	for _, c := range []struct {
		target BinlogTarget
		want   string
	}{
		{BinlogTarget{}, "b2"},
		{BinlogTarget{Time: at(25)}, "b2"},
		{BinlogTarget{Time: at(19)}, "b1"},
		{BinlogTarget{Time: at(9)}, ""},
		{BinlogTarget{GTID: uuidA + ":23"}, "b2"},
		{BinlogTarget{GTID: uuidA + ":21"}, "b1"}, // b2 may hold it
		{BinlogTarget{GTID: uuidA + ":5"}, ""},
	} {
		m, err := BackupFor(entries, c.target)
		switch {
		case c.want == "" && !errors.Is(err, ErrNoBackup):
			t.Errorf("%s: got %v, %v; want ErrNoBackup", c.target, m, err)
		case c.want != "" && (err != nil || m.ID != c.want):
			t.Errorf("%s: got %v, %v; want %s", c.target, m, err, c.want)
		}
	}
}

func TestPrunable(t *testing.T) {
	f1 := file(gtid.MySQL, "db1", "binlog.000001", "", uuidA+":1-10", 1, 10)
	f2 := file(gtid.MySQL, "db1", "binlog.000002", uuidA+":1-10", uuidA+":1-20", 11, 20)
	g := file(gtid.MySQL, "db2", "binlog.000007", uuidA+":1-5", uuidA+":1-12,"+uuidB+":1-3", 6, 14)
	m1 := file(gtid.MariaDB, "db1", "binlog.000001", "", "0-1-10", 1, 10)
	m2 := file(gtid.MariaDB, "db2", "binlog.000002", "0-1-10", "0-1-10,0-2-15", 11, 15)
	files := []*BinlogManifest{f1, f2, g, m1, m2}
	for _, c := range []struct {
		name   string
		oldest map[gtid.Flavor]gtid.Set
		want   []*BinlogManifest
	}{
		{"no backup: keep all", nil, nil},
		{"backup inside the first file", map[gtid.Flavor]gtid.Set{gtid.MySQL: gtid.MustParse(gtid.MySQL, uuidA+":1-9")}, nil},
		{"backup at the end of the first file", map[gtid.Flavor]gtid.Set{gtid.MySQL: gtid.MustParse(gtid.MySQL, uuidA+":1-10")}, []*BinlogManifest{f1}},
		{"overlapping file of the new primary kept until covered", map[gtid.Flavor]gtid.Set{gtid.MySQL: gtid.MustParse(gtid.MySQL, uuidA+":1-20")}, []*BinlogManifest{f1, f2}},
		{"mariadb by domain", map[gtid.Flavor]gtid.Set{gtid.MariaDB: gtid.MustParse(gtid.MariaDB, "0-2-15")}, []*BinlogManifest{m1, m2}},
	} {
		if got := prunable(c.oldest, files); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

// Random failovers over one linear history: the old primary archives some of its closed files,
// the new one (which logged the same history as a replica, cut into other files) archives what
// adds to the archive, as the archiver decides. From any backup position the plan then has no
// gap, and cutting its files replays every later transaction exactly once, in order.
func TestReplayPlanRandomFailovers(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 500 {
		n := 5 + rng.IntN(60)
		// cuts splits 1..upto into files of a member; each transaction is 10 bytes.
		cuts := func(member string, upto int) []*BinlogManifest {
			var files []*BinlogManifest
			for start := 1; start <= upto; {
				end := min(upto, start+rng.IntN(8))
				f := file(gtid.MySQL, member, fmt.Sprintf("binlog.%06d", len(files)+1), "", uuidA+fmt.Sprintf(":1-%d", end), start, end)
				if start > 1 {
					f.GTIDBefore = uuidA + fmt.Sprintf(":1-%d", start-1)
				}
				files = append(files, f)
				start = end + 1
			}
			return files
		}
		failover := 1 + rng.IntN(n)
		var archive []*BinlogManifest
		archived := gtid.MustParse(gtid.MySQL, "")
		add := func(f *BinlogManifest, at int) {
			if ok, _ := archived.Contains(f.after()); ok {
				return // the archiver skips it
			}
			f.ArchivedAt = at0(at)
			archive = append(archive, f)
			archived, _ = archived.Union(f.after())
		}
		old := cuts("db1", failover)
		for _, f := range old[:rng.IntN(len(old)+1)] { // the rest was still open, or not yet looked at
			add(f, 0)
		}
		for _, f := range cuts("db2", n) {
			add(f, 1)
		}
		pos := rng.IntN(n)
		from := gtid.MustParse(gtid.MySQL, "")
		if pos > 0 {
			from = gtid.MustParse(gtid.MySQL, fmt.Sprintf("%s:1-%d", uuidA, pos))
		}
		steps, abandoned, err := PlanReplay(gtid.MySQL, from, archive, BinlogTarget{})
		if err != nil || len(abandoned) > 0 {
			t.Fatalf("round %d: %v (abandoned %d)", round, err, len(abandoned))
		}
		var replayed []int
		for _, s := range steps {
			var txns []BinlogTxn
			lo, hi := s.File.FirstTime.Sub(t0)/time.Second, s.File.LastTime.Sub(t0)/time.Second
			for g := int(lo); g <= int(hi); g++ {
				txns = append(txns, BinlogTxn{GTID: fmt.Sprintf("%s:%d", uuidA, g), Start: int64(g * 10), End: int64(g*10 + 10), Time: at(g)})
			}
			start, end, k, _, err := cutTxns(gtid.MySQL, s.Covered, BinlogTarget{}, txns)
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			for g := start / 10; k > 0 && g < end/10; g++ {
				replayed = append(replayed, int(g))
			}
		}
		for i, g := range replayed {
			if g != pos+1+i {
				t.Fatalf("round %d: from %d to %d, replayed %v", round, pos, n, replayed)
			}
		}
		if len(replayed) != n-pos {
			t.Fatalf("round %d: from %d to %d, replayed %v", round, pos, n, replayed)
		}
	}
}

// at0 is an archive time: the new primary's files are archived after the old one's.
func at0(i int) time.Time { return t0.Add(time.Duration(i) * time.Hour) }
