package gtid

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
)

// Set is a set of global transaction IDs of one flavor. It is an immutable value: every
// operation returns a new set, so sets may be shared between goroutines freely. The zero value
// is the empty set of no flavor; it combines with sets of either flavor. Combining two flavored
// sets of different flavors, even empty ones, fails with ErrFlavorMismatch.
//
// A set maps each source to sorted, disjoint, non-adjacent closed intervals of sequence numbers.
//
// For MySQL a source is a server UUID, or a UUID and a tag (MySQL 8.4 tagged GTIDs).
//
// For MariaDB a source is a (domain, server) pair, and an entry domain-server-seqno stands for the
// interval [1, seqno]: the domain's history up to seqno as far as that server's transactions are
// concerned. Under gtid_strict_mode a domain's seqnos only grow and every server applies a domain
// in order, so a replica whose gtid_binlog_state is not contained in the primary's has an entry
// (domain, server) beyond the primary's, i.e. an errant transaction. Several servers per domain
// are normal in gtid_binlog_state and are kept apart.
type Set struct {
	flavor Flavor
	// Never holds an empty list. Lists are shared between sets and never modified once built.
	ranges map[gtidSource][]gtidInterval
}

// gtidSource identifies where a run of sequence numbers comes from: uuid and tag for MySQL,
// domain and server for MariaDB. Fields of the other flavor stay zero, so one ordering serves both.
type gtidSource struct {
	uuid   string // lowercase
	tag    string // lowercase; "" for untagged
	domain uint32
	server uint32
}

func (a gtidSource) compare(b gtidSource) int {
	return cmp.Or(strings.Compare(a.uuid, b.uuid), strings.Compare(a.tag, b.tag),
		cmp.Compare(a.domain, b.domain), cmp.Compare(a.server, b.server))
}

// gtidInterval is the closed range [start, end] of sequence numbers, 1 <= start <= end.
type gtidInterval struct{ start, end uint64 }

// asciiSpace is what MySQL skips around separators; it prints "\n" after each comma.
const asciiSpace = " \t\n\v\f\r"

// maxTagLen is MySQL's limit on the length of a GTID tag.
const maxTagLen = 32

// Parse reads a GTID set as the server prints it.
//
// MySQL: "uuid:1-5:7,uuid2:1-3", with MySQL 8.4 tags as "uuid:1-5:tag:1-3:9" (a tag applies to the
// intervals after it). Intervals may be unsorted or overlap. Whitespace around commas and colons
// is ignored.
//
// MariaDB: a GTID position or binlog state, "domain-server-seqno,...". A repeated
// (domain, server) keeps the highest seqno. Seqno 0, which MariaDB accepts, adds nothing.
//
// The empty string is the empty set of flavor f.
func Parse(f Flavor, s string) (Set, error) {
	var (
		set Set
		err error
	)
	switch f {
	case MySQL:
		set, err = parseMySQL(s)
	case MariaDB:
		set, err = parseMariaDB(s)
	default:
		err = fmt.Errorf("unknown flavor %q", f)
	}
	if err != nil {
		return Set{}, fmt.Errorf("%w %q (%s): %w", ErrBadSet, s, f, err)
	}
	return set, nil
}

// MustParse is Parse for constants and tests; it panics on a bad set.
func MustParse(f Flavor, s string) Set {
	set, err := Parse(f, s)
	if err != nil {
		panic(err)
	}
	return set
}

func parseMySQL(s string) (Set, error) {
	ranges := make(map[gtidSource][]gtidInterval)
	if strings.Trim(s, asciiSpace) != "" {
		for elem := range strings.SplitSeq(s, ",") {
			if err := parseMySQLElement(strings.Trim(elem, asciiSpace), ranges); err != nil {
				return Set{}, err
			}
		}
	}
	for src, ivs := range ranges {
		ranges[src] = normalizeIntervals(ivs)
	}
	return Set{flavor: MySQL, ranges: ranges}, nil
}

// parseMySQLElement adds the intervals of one "uuid:intervals[:tag:intervals]..." element to
// ranges, unsorted.
func parseMySQLElement(elem string, ranges map[gtidSource][]gtidInterval) error {
	if elem == "" {
		return errors.New("empty element")
	}
	parts := strings.Split(elem, ":")
	uuid, err := parseUUID(strings.Trim(parts[0], asciiSpace))
	if err != nil {
		return fmt.Errorf("element %q: %w", elem, err)
	}
	if len(parts) == 1 {
		return fmt.Errorf("element %q: no intervals after the UUID", elem)
	}
	src := gtidSource{uuid: uuid}
	tagPending := false // a tag was read and no interval yet
	for _, p := range parts[1:] {
		p = strings.Trim(p, asciiSpace)
		if p != "" && (p[0] == '_' || isASCIILetter(p[0])) {
			if tagPending {
				return fmt.Errorf("element %q: tag %q has no intervals", elem, src.tag)
			}
			if src.tag, err = parseTag(p); err != nil {
				return fmt.Errorf("element %q: %w", elem, err)
			}
			tagPending = true
			continue
		}
		iv, err := parseInterval(p)
		if err != nil {
			return fmt.Errorf("element %q: %w", elem, err)
		}
		ranges[src] = append(ranges[src], iv)
		tagPending = false
	}
	if tagPending {
		return fmt.Errorf("element %q: tag %q has no intervals", elem, src.tag)
	}
	return nil
}

// parseUUID accepts the 8-4-4-4-12 hex form servers print, in either case.
func parseUUID(s string) (string, error) {
	if len(s) != 36 {
		return "", fmt.Errorf("bad server UUID %q", s)
	}
	for i := range len(s) {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return "", fmt.Errorf("bad server UUID %q", s)
			}
		} else if !isHexDigit(c) {
			return "", fmt.Errorf("bad server UUID %q", s)
		}
	}
	return strings.ToLower(s), nil
}

// parseTag checks MySQL's tag syntax: a letter or '_', then letters, digits or '_'; tags compare
// case-insensitively, so they are kept lowercase.
func parseTag(s string) (string, error) {
	if len(s) > maxTagLen {
		return "", fmt.Errorf("tag %q longer than %d characters", s, maxTagLen)
	}
	for i := range len(s) {
		if c := s[i]; c != '_' && !isASCIILetter(c) && (i == 0 || c < '0' || c > '9') {
			return "", fmt.Errorf("bad tag %q", s)
		}
	}
	return strings.ToLower(s), nil
}

// parseInterval reads "n" or "a-b" with 1 <= a <= b.
func parseInterval(s string) (gtidInterval, error) {
	first, last, isRange := strings.Cut(s, "-")
	start, err := parseDecimal(first, 64, "sequence number")
	if err != nil {
		return gtidInterval{}, fmt.Errorf("interval %q: %w", s, err)
	}
	end := start
	if isRange {
		if end, err = parseDecimal(last, 64, "sequence number"); err != nil {
			return gtidInterval{}, fmt.Errorf("interval %q: %w", s, err)
		}
	}
	switch {
	case start == 0:
		return gtidInterval{}, fmt.Errorf("interval %q: sequence numbers start at 1", s)
	case end < start:
		return gtidInterval{}, fmt.Errorf("interval %q ends before it starts", s)
	}
	return gtidInterval{start, end}, nil
}

// parseDecimal reads an unsigned decimal of bitSize bits; what names it in errors.
func parseDecimal(s string, bitSize int, what string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, bitSize)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("%s %s does not fit in %d bits", what, s, bitSize)
	case err != nil:
		return 0, fmt.Errorf("%s %q is not a decimal number", what, s)
	}
	return n, nil
}

func isASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func isHexDigit(c byte) bool { return c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'f' }

func parseMariaDB(s string) (Set, error) {
	ranges := make(map[gtidSource][]gtidInterval)
	if strings.Trim(s, asciiSpace) != "" {
		for elem := range strings.SplitSeq(s, ",") {
			src, seqno, err := parseMariaDBGTID(strings.Trim(elem, asciiSpace))
			if err != nil {
				return Set{}, err
			}
			// [1, 0] is empty: the server has no transaction in the domain yet.
			if cur, ok := ranges[src]; seqno > 0 && (!ok || cur[0].end < seqno) {
				ranges[src] = []gtidInterval{{1, seqno}}
			}
		}
	}
	return Set{flavor: MariaDB, ranges: ranges}, nil
}

// parseMariaDBGTID reads "domain-server-seqno".
func parseMariaDBGTID(elem string) (gtidSource, uint64, error) {
	if elem == "" {
		return gtidSource{}, 0, errors.New("empty element")
	}
	parts := strings.SplitN(elem, "-", 3)
	if len(parts) != 3 {
		return gtidSource{}, 0, fmt.Errorf("GTID %q: want domain-server-seqno", elem)
	}
	domain, err := parseDecimal(parts[0], 32, "domain id")
	if err != nil {
		return gtidSource{}, 0, fmt.Errorf("GTID %q: %w", elem, err)
	}
	server, err := parseDecimal(parts[1], 32, "server id")
	if err != nil {
		return gtidSource{}, 0, fmt.Errorf("GTID %q: %w", elem, err)
	}
	seqno, err := parseDecimal(parts[2], 64, "sequence number")
	if err != nil {
		return gtidSource{}, 0, fmt.Errorf("GTID %q: %w", elem, err)
	}
	return gtidSource{domain: uint32(domain), server: uint32(server)}, seqno, nil
}

// normalizeIntervals sorts and merges ivs in place.
func normalizeIntervals(ivs []gtidInterval) []gtidInterval {
	slices.SortFunc(ivs, func(a, b gtidInterval) int { return cmp.Compare(a.start, b.start) })
	out := ivs[:1]
	for _, iv := range ivs[1:] {
		out = appendInterval(out, iv)
	}
	return out
}

// appendInterval adds iv to the merged list out, whose last interval starts no later than iv,
// merging when they overlap or touch. iv.start-1 cannot wrap as sequence numbers start at 1, and
// comparing against it rather than out's end+1 cannot overflow either.
func appendInterval(out []gtidInterval, iv gtidInterval) []gtidInterval {
	if n := len(out); n > 0 && iv.start-1 <= out[n-1].end {
		out[n-1].end = max(out[n-1].end, iv.end)
		return out
	}
	return append(out, iv)
}

func unionIntervals(a, b []gtidInterval) []gtidInterval {
	out := make([]gtidInterval, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		if j == len(b) || (i < len(a) && a[i].start <= b[j].start) {
			out = appendInterval(out, a[i])
			i++
		} else {
			out = appendInterval(out, b[j])
			j++
		}
	}
	return out
}

// subtractIntervals returns a minus b, nil if nothing is left.
func subtractIntervals(a, b []gtidInterval) []gtidInterval {
	var out []gtidInterval
	j := 0 // b[:j] ends before the current interval of a, hence before all later ones
	for _, iv := range a {
		for j < len(b) && b[j].end < iv.start {
			j++
		}
		left := true
		for k := j; k < len(b) && b[k].start <= iv.end; k++ {
			if b[k].start > iv.start {
				out = append(out, gtidInterval{iv.start, b[k].start - 1})
			}
			if b[k].end >= iv.end {
				left = false
				break
			}
			iv.start = b[k].end + 1 // no overflow: b[k].end < iv.end
		}
		if left {
			out = append(out, iv)
		}
	}
	return out
}

// containsIntervals reports whether a ⊇ b. As a is merged, each interval of b must lie within
// the first interval of a that does not end before it.
func containsIntervals(a, b []gtidInterval) bool {
	i := 0
	for _, iv := range b {
		for i < len(a) && a[i].end < iv.start {
			i++
		}
		if i == len(a) || a[i].start > iv.start || a[i].end < iv.end {
			return false
		}
	}
	return true
}

// combineFlavors returns the flavor of a result of a and b, failing when both are flavored and
// differ; op says what was attempted.
func combineFlavors(op string, a, b Set) (Flavor, error) {
	switch {
	case a.flavor == "":
		return b.flavor, nil
	case b.flavor == "", a.flavor == b.flavor:
		return a.flavor, nil
	}
	return "", fmt.Errorf("%s: %w: %s and %s", op, ErrFlavorMismatch, a.flavor, b.flavor)
}

// Flavor is the set's flavor, "" for the zero value.
func (s Set) Flavor() Flavor { return s.flavor }

// IsEmpty reports whether the set holds no transaction.
func (s Set) IsEmpty() bool { return len(s.ranges) == 0 }

// String formats the set canonically: sources sorted, "n" for single numbers and "a-b" for ranges.
//
// MySQL: "uuid:1-5:7:tag:1-3,uuid2:1", untagged intervals before the tags of a UUID, Parse
// reads it back.
//
// MariaDB: "domain-server-seqno,..." sorted by domain then server. A source whose intervals are not
// exactly [1, seqno], as Subtract produces, is written "domain-server-[a-b,c]": for display only,
// neither MariaDB nor Parse accepts it.
func (s Set) String() string {
	srcs := slices.SortedFunc(maps.Keys(s.ranges), gtidSource.compare)
	var buf []byte
	for i, src := range srcs {
		ivs := s.ranges[src]
		if s.flavor == MariaDB {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = strconv.AppendUint(buf, uint64(src.domain), 10)
			buf = append(buf, '-')
			buf = strconv.AppendUint(buf, uint64(src.server), 10)
			buf = append(buf, '-')
			if len(ivs) == 1 && ivs[0].start == 1 {
				buf = strconv.AppendUint(buf, ivs[0].end, 10)
				continue
			}
			buf = append(buf, '[')
			for k, iv := range ivs {
				if k > 0 {
					buf = append(buf, ',')
				}
				buf = appendIntervalText(buf, iv)
			}
			buf = append(buf, ']')
			continue
		}
		if i == 0 || src.uuid != srcs[i-1].uuid {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, src.uuid...)
		}
		if src.tag != "" {
			buf = append(buf, ':')
			buf = append(buf, src.tag...)
		}
		for _, iv := range ivs {
			buf = append(buf, ':')
			buf = appendIntervalText(buf, iv)
		}
	}
	return string(buf)
}

func appendIntervalText(buf []byte, iv gtidInterval) []byte {
	buf = strconv.AppendUint(buf, iv.start, 10)
	if iv.end != iv.start {
		buf = append(buf, '-')
		buf = strconv.AppendUint(buf, iv.end, 10)
	}
	return buf
}

// Union returns s ∪ o.
func (s Set) Union(o Set) (Set, error) {
	f, err := combineFlavors("union GTID sets", s, o)
	if err != nil {
		return Set{}, err
	}
	ranges := make(map[gtidSource][]gtidInterval, max(len(s.ranges), len(o.ranges)))
	maps.Copy(ranges, s.ranges)
	for src, theirs := range o.ranges {
		if mine, ok := ranges[src]; ok {
			theirs = unionIntervals(mine, theirs)
		}
		ranges[src] = theirs
	}
	return Set{flavor: f, ranges: ranges}, nil
}

// Subtract returns s − o, e.g. a replica's errant transactions: replica.Subtract(primary).
func (s Set) Subtract(o Set) (Set, error) {
	f, err := combineFlavors("subtract GTID sets", s, o)
	if err != nil {
		return Set{}, err
	}
	ranges := make(map[gtidSource][]gtidInterval, len(s.ranges))
	for src, mine := range s.ranges {
		if theirs, ok := o.ranges[src]; ok {
			mine = subtractIntervals(mine, theirs)
		}
		if len(mine) > 0 {
			ranges[src] = mine
		}
	}
	return Set{flavor: f, ranges: ranges}, nil
}

// WithoutUUID returns s without the MySQL transactions of server uuid, tagged ones included.
func (s Set) WithoutUUID(uuid string) Set {
	uuid = strings.ToLower(uuid)
	ranges := make(map[gtidSource][]gtidInterval, len(s.ranges))
	for src, ivs := range s.ranges {
		if src.uuid != uuid {
			ranges[src] = ivs
		}
	}
	return Set{flavor: s.flavor, ranges: ranges}
}

// Originated returns the transactions of s that one server wrote itself: for MySQL those of its
// server_uuid, tagged ones included; for MariaDB those of its server_id, in every domain.
func (s Set) Originated(uuid string, serverID uint32) Set {
	uuid = strings.ToLower(uuid)
	ranges := make(map[gtidSource][]gtidInterval)
	for src, ivs := range s.ranges {
		if s.flavor == MySQL && uuid != "" && src.uuid == uuid || s.flavor == MariaDB && src.server == serverID {
			ranges[src] = ivs
		}
	}
	return Set{flavor: s.flavor, ranges: ranges}
}

// Contains reports whether s ⊇ o.
func (s Set) Contains(o Set) (bool, error) {
	if _, err := combineFlavors("check GTID set containment", s, o); err != nil {
		return false, err
	}
	return s.contains(o), nil
}

func (s Set) contains(o Set) bool {
	for src, theirs := range o.ranges {
		mine, ok := s.ranges[src]
		if !ok || !containsIntervals(mine, theirs) {
			return false
		}
	}
	return true
}

// Equal reports whether s and o hold the same transactions. The empty sets of one flavor and of
// no flavor are equal.
func (s Set) Equal(o Set) (bool, error) {
	if _, err := combineFlavors("compare GTID sets", s, o); err != nil {
		return false, err
	}
	if len(s.ranges) != len(o.ranges) {
		return false, nil
	}
	// Representations are canonical, so equal sets have identical interval lists.
	for src, mine := range s.ranges {
		if theirs, ok := o.ranges[src]; !ok || !slices.Equal(mine, theirs) {
			return false, nil
		}
	}
	return true, nil
}

// Count is the number of transactions in the set, saturating at math.MaxUint64.
//
// For MariaDB it sums the seqno ranges of all (domain, server) sources. As seqnos of a domain are
// shared by its servers, a server's range also covers seqnos other servers used, so the count is
// an upper bound; differences of counts measure "how far behind" only within one source.
func (s Set) Count() uint64 {
	n := s.count()
	if n.hi > 0 {
		return math.MaxUint64
	}
	return n.lo
}

func (s Set) count() uint128 {
	var n uint128
	for _, ivs := range s.ranges {
		for _, iv := range ivs {
			n = n.add(iv.end - iv.start + 1) // no overflow: start >= 1
		}
	}
	return n
}

// Domains returns, for a MariaDB set, the highest seqno of each domain over all its servers; nil
// for other flavors. It ranks replicas' progress when neither set contains the other.
func (s Set) Domains() map[uint32]uint64 {
	if s.flavor != MariaDB {
		return nil
	}
	domains := make(map[uint32]uint64)
	for src, ivs := range s.ranges {
		domains[src.domain] = max(domains[src.domain], ivs[len(ivs)-1].end)
	}
	return domains
}

// MariaDBPosition returns, for a MariaDB set, a GTID position to hand to MASTER_GTID_WAIT or
// gtid_slave_pos: per domain the entry with the highest seqno (on a tie the lowest server id),
// "domain-server-seqno,..." sorted by domain. Only meaningful when each source is a prefix [1, n],
// as in a parsed position or binlog state; otherwise the highest seqno stands for its source.
// It returns "" for an empty set or a set of another flavor.
func (s Set) MariaDBPosition() string {
	if s.flavor != MariaDB {
		return ""
	}
	type head struct {
		server uint32
		seqno  uint64
	}
	best := make(map[uint32]head)
	for src, ivs := range s.ranges {
		h := head{src.server, ivs[len(ivs)-1].end}
		if cur, ok := best[src.domain]; !ok || h.seqno > cur.seqno || (h.seqno == cur.seqno && h.server < cur.server) {
			best[src.domain] = h
		}
	}
	var buf []byte
	for i, domain := range slices.Sorted(maps.Keys(best)) {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendUint(buf, uint64(domain), 10)
		buf = append(buf, '-')
		buf = strconv.AppendUint(buf, uint64(best[domain].server), 10)
		buf = append(buf, '-')
		buf = strconv.AppendUint(buf, best[domain].seqno, 10)
	}
	return string(buf)
}

// MoreAdvanced ranks two servers' GTID sets for candidate choice: 1 if a ⊋ b, -1 if b ⊋ a, 0 if
// they are equal. When neither contains the other it falls back to a measure of progress, and
// returns 0 if those tie although the sets differ: for MySQL Count(), for MariaDB the sum over
// domains of the highest seqno (see Domains). The fallback ignores which transactions differ, so
// callers must check for errant transactions separately.
func MoreAdvanced(a, b Set) (int, error) {
	f, err := combineFlavors("compare GTID sets", a, b)
	if err != nil {
		return 0, err
	}
	aHasB, bHasA := a.contains(b), b.contains(a)
	switch {
	case aHasB && bHasA:
		return 0, nil
	case aHasB:
		return 1, nil
	case bHasA:
		return -1, nil
	case f == MariaDB:
		return a.domainProgress().compare(b.domainProgress()), nil
	default:
		return a.count().compare(b.count()), nil
	}
}

func (s Set) domainProgress() uint128 {
	var n uint128
	for _, seqno := range s.Domains() {
		n = n.add(seqno)
	}
	return n
}

// uint128 keeps sums of sequence numbers exact, so rankings stay right near 2^64.
type uint128 struct{ hi, lo uint64 }

func (a uint128) add(n uint64) uint128 {
	lo, carry := bits.Add64(a.lo, n, 0)
	return uint128{a.hi + carry, lo}
}

func (a uint128) compare(b uint128) int {
	return cmp.Or(cmp.Compare(a.hi, b.hi), cmp.Compare(a.lo, b.lo))
}
