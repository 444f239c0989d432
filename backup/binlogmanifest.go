package backup

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// binlogManifestFormat is the version of a binlog file's manifest; a reader refuses any other.
const binlogManifestFormat = 1

// BinlogManifest describes one archived binlog file. It is written after the file's object, so
// an object without one is an upload that did not finish and is never replayed.
//
// Layout under the store's prefix: <cluster>/binlogs/<member>/<file>.<sha256 prefix> and the
// same key with ".json". The sha256 in the key keeps two files of one name apart: a member whose
// data dir was re-seeded starts its binlog names again.
type BinlogManifest struct {
	Format  int         `json:"format"`
	Cluster string      `json:"cluster"`
	Member  string      `json:"member"`
	Flavor  gtid.Flavor `json:"flavor"`
	// File is the binlog file's name on the member, e.g. binlog.000042.
	File   string `json:"file"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// GTIDBefore is the server's GTID state when the file was opened, GTIDAfter the state at its
	// end: the file holds the transactions between them, and a file continues the archive when
	// its GTIDBefore is covered by what comes before it.
	GTIDBefore string `json:"gtid_before"`
	GTIDAfter  string `json:"gtid_after"`
	// FirstGTID and LastGTID are its first and last transactions, FirstTime and LastTime their
	// times (whole seconds, as the binlog stamps them).
	FirstGTID    string    `json:"first_gtid"`
	LastGTID     string    `json:"last_gtid"`
	FirstTime    time.Time `json:"first_time"`
	LastTime     time.Time `json:"last_time"`
	Transactions int       `json:"transactions"`
	ArchivedAt   time.Time `json:"archived_at"`
	// Epoch is the cluster record's epoch when the file was archived (0: not known): it orders
	// two primaries' files exactly, where ArchivedAt depends on their clocks.
	Epoch uint64 `json:"epoch,omitempty"`
}

var (
	binlogNamePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,200}\.[0-9]{6,}$`)
	memberPattern     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
)

func (l layout) binlogRoot() string { return path.Join(l.cluster, "binlogs") + "/" }

// binlogKey is where the object of a file goes; its manifest is the key plus ".json".
func (l layout) binlogKey(member, file, sum string) string {
	return l.binlogRoot() + member + "/" + file + "." + sum[:16]
}

// ObjectKey is where the file's bytes are, relative to the store's prefix.
func (m *BinlogManifest) ObjectKey() string {
	return layout{m.Cluster}.binlogKey(m.Member, m.File, m.SHA256)
}

func (m *BinlogManifest) manifestKey() string { return m.ObjectKey() + ".json" }

// before and after are the parsed GTID states (checked by ParseBinlogManifest).
func (m *BinlogManifest) before() gtid.Set { return gtid.MustParse(m.Flavor, m.GTIDBefore) }
func (m *BinlogManifest) after() gtid.Set  { return gtid.MustParse(m.Flavor, m.GTIDAfter) }

// ParseBinlogManifest reads a binlog file's manifest and checks it is complete and consistent;
// unknown fields and trailing data are refused, as for a backup's manifest.
func ParseBinlogManifest(b []byte) (*BinlogManifest, error) {
	var m BinlogManifest
	if err := decodeStrict(b, &m); err != nil {
		return nil, fmt.Errorf("binlog manifest: %w", err)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("binlog manifest: %w", err)
	}
	return &m, nil
}

// Marshal encodes the manifest after the checks ParseBinlogManifest makes.
func (m *BinlogManifest) Marshal() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("binlog manifest: %w", err)
	}
	return json.MarshalIndent(m, "", "  ")
}

func (m *BinlogManifest) check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if m.Format != binlogManifestFormat {
		bad("format %d: this shoal reads format %d", m.Format, binlogManifestFormat)
	}
	if m.Cluster == "" || strings.Contains(m.Cluster, "/") {
		bad("cluster %q: want a name without '/'", m.Cluster)
	}
	if !memberPattern.MatchString(m.Member) {
		bad("member %q: want a DNS label", m.Member)
	}
	if m.Flavor != gtid.MySQL && m.Flavor != gtid.MariaDB {
		bad("flavor %q: want mysql or mariadb", m.Flavor)
	}
	if !binlogNamePattern.MatchString(m.File) {
		bad("file %q: want a binlog file name such as binlog.000042", m.File)
	}
	if m.Size < int64(len(binlogMagic)) {
		bad("size %d: a binlog file has at least its magic number", m.Size)
	}
	if sum, err := hex.DecodeString(m.SHA256); err != nil || len(sum) != 32 || strings.ToLower(m.SHA256) != m.SHA256 {
		bad("sha256 %q is not 64 lower-case hex digits", m.SHA256)
	}
	if m.Transactions <= 0 {
		// A file without transactions adds nothing to replay: it is never archived.
		bad("transactions %d: an archived file holds at least one", m.Transactions)
	}
	if m.FirstTime.IsZero() || m.LastTime.Before(m.FirstTime) {
		bad("first_time %s and last_time %s: want a first no later than the last", m.FirstTime, m.LastTime)
	}
	if m.Flavor == gtid.MySQL || m.Flavor == gtid.MariaDB {
		if err := m.checkGTIDs(); err != nil {
			bad("%v", err)
		}
	}
	return errors.Join(errs...)
}

func (m *BinlogManifest) checkGTIDs() error {
	before, err := gtid.Parse(m.Flavor, m.GTIDBefore)
	if err != nil {
		return fmt.Errorf("gtid_before: %w", err)
	}
	after, err := gtid.Parse(m.Flavor, m.GTIDAfter)
	if err != nil {
		return fmt.Errorf("gtid_after: %w", err)
	}
	if covers(m.Flavor, before, after) || !covers(m.Flavor, after, before) {
		return fmt.Errorf("gtid_after %s must add transactions to gtid_before %s", m.GTIDAfter, m.GTIDBefore)
	}
	for _, g := range []string{m.FirstGTID, m.LastGTID} {
		one, err := parseOneGTID(m.Flavor, g)
		if err != nil {
			return err
		}
		if covers(m.Flavor, before, one) || !covers(m.Flavor, after, one) {
			return fmt.Errorf("GTID %s is not one of the file's, between gtid_before and gtid_after", g)
		}
	}
	return nil
}

var oneGTID = map[gtid.Flavor]*regexp.Regexp{
	gtid.MySQL:   regexp.MustCompile(`^[0-9a-fA-F-]{36}:[0-9]{1,20}$`),
	gtid.MariaDB: regexp.MustCompile(`^[0-9]{1,10}-[0-9]{1,10}-[0-9]{1,20}$`),
}

// parseOneGTID reads a single transaction's GTID: MySQL "uuid:n", MariaDB "domain-server-seqno".
func parseOneGTID(f gtid.Flavor, s string) (gtid.Set, error) {
	re, ok := oneGTID[f]
	if !ok || !re.MatchString(s) {
		form := "domain-server-seqno"
		if f == gtid.MySQL {
			form = "uuid:n"
		}
		return gtid.Set{}, fmt.Errorf("GTID %q: want one transaction, %s", s, form)
	}
	g, err := gtid.Parse(f, s)
	if err != nil {
		return gtid.Set{}, fmt.Errorf("GTID %q: %w", s, err)
	}
	if g.IsEmpty() {
		return gtid.Set{}, fmt.Errorf("GTID %q: sequence number 0 names no transaction", s)
	}
	return g, nil
}

// covers reports whether the state have includes every transaction of want. MySQL compares sets.
// MariaDB compares per domain: under gtid_strict_mode a domain's transactions are applied in
// order whichever server wrote them, so the highest seqno of a domain stands for all before it
// (a position names one server per domain, a binlog state several).
func covers(f gtid.Flavor, have, want gtid.Set) bool {
	if f == gtid.MariaDB {
		hd := have.Domains()
		for d, seq := range want.Domains() {
			if hd[d] < seq {
				return false
			}
		}
		return true
	}
	ok, err := have.Contains(want)
	return err == nil && ok
}
