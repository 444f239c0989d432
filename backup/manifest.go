package backup

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// manifestFormat is the version of the manifest's layout; a reader refuses any other, so an old
// agent never misreads a newer backup as valid.
const manifestFormat = 1

// Archive formats: how the uncompressed stream is laid out.
const (
	ArchiveMbstream = "mbstream" // mariadb-backup --stream=mbstream
	ArchiveTar      = "tar"      // a MySQL clone's data dir
)

// Manifest describes one complete backup. It is the last object written: a backup without one,
// or whose objects do not match it, is never valid.
type Manifest struct {
	Format  int    `json:"format"`
	ID      string `json:"id"`
	Cluster string `json:"cluster"`
	Member  string `json:"member"`
	// Job is the scheduled job that took it (record.BackupJob.ID), "" for one taken by hand:
	// retention keeps what a running job is writing.
	Job           string      `json:"job,omitempty"`
	Flavor        gtid.Flavor `json:"flavor"`
	ServerVersion string      `json:"server_version"`
	// Archive is ArchiveMbstream or ArchiveTar; Compression is always "zstd" today.
	Archive     string `json:"archive"`
	Compression string `json:"compression"`
	// GTIDExecuted is the copy's GTID position: MySQL's gtid_executed set, MariaDB's position
	// (one GTID per domain, as gtid_slave_pos takes it).
	GTIDExecuted string `json:"gtid_executed"`
	// GTIDExecutedMax is set when the position is known only within bounds: the copy holds every
	// transaction of GTIDExecuted and none outside GTIDExecutedMax. A MySQL clone reports no
	// position, so it is bracketed by the server's before and after; they differ when
	// transactions committed during the clone. Replaying binlogs from GTIDExecuted is safe
	// either way: the server skips the GTIDs it has. The binlog coordinates go with GTIDExecuted.
	GTIDExecutedMax string    `json:"gtid_executed_max,omitempty"`
	BinlogFile      string    `json:"binlog_file,omitempty"`
	BinlogPosition  uint64    `json:"binlog_position,omitempty"`
	StartTime       time.Time `json:"start_time"`
	EndTime         time.Time `json:"end_time"`
	// RawBytes is the archive's size before compression; CompressedBytes the objects' total.
	RawBytes        int64    `json:"raw_bytes"`
	CompressedBytes int64    `json:"compressed_bytes"`
	Objects         []Object `json:"objects"`
}

// Object is one stored piece of the compressed archive; the archive is their concatenation in
// order.
type Object struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// idPattern keeps ids usable as one S3 key segment and sortable by time: ids start with the UTC
// start time (see newID).
var idPattern = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z(-[a-z0-9][a-z0-9-]{0,62})?$`)

// objectPattern is what Take names objects; anything else in a manifest is refused, so a manifest
// can never point a restore outside its backup's prefix.
var objectPattern = regexp.MustCompile(`^data-[0-9]{6}\.zst$`)

// ValidID reports whether id could name a backup.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// newID names a backup by its start time and member: ids sort by time, and two members never
// collide.
func newID(start time.Time, member string) string {
	return start.UTC().Format("20060102T150405Z") + "-" + member
}

// idTime is the start time an id begins with; zero for a name that is no id (a stray key).
func idTime(id string) time.Time {
	if !ValidID(id) {
		return time.Time{}
	}
	t, _ := time.Parse("20060102T150405Z", id[:len("20060102T150405Z")])
	return t
}

// objectName is the name of the i-th object of a backup.
func objectName(i int) string { return fmt.Sprintf("data-%06d.zst", i) }

// jobPattern is a scheduled job's id (record.BackupJob.ID): its slot and attempt.
var jobPattern = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9]{1,3}$`)

// ParseManifest reads a manifest and checks that it is complete and consistent. Unknown fields
// are errors: a manifest is written by shoal only, and a field we do not know may change what
// the backup means.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := decodeStrict(b, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return &m, nil
}

// decodeStrict decodes one JSON object into v, refusing unknown fields and trailing data.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// Marshal encodes the manifest after the checks ParseManifest makes, so what is written can
// always be read back.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return json.MarshalIndent(m, "", "  ")
}

func checkGTIDBounds(flavor gtid.Flavor, low, high string) error {
	lo, err := gtid.Parse(flavor, low)
	if err != nil {
		return fmt.Errorf("gtid_executed: %w", err)
	}
	if high == "" {
		return nil
	}
	hi, err := gtid.Parse(flavor, high)
	if err != nil {
		return fmt.Errorf("gtid_executed_max: %w", err)
	}
	if ok, err := hi.Contains(lo); err != nil || !ok {
		return fmt.Errorf("gtid_executed_max %s does not contain gtid_executed %s", high, low)
	}
	return nil
}

func (m *Manifest) check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if m.Format != manifestFormat {
		bad("format %d: this shoal reads format %d", m.Format, manifestFormat)
	}
	if !ValidID(m.ID) {
		bad("id %q: want YYYYMMDDTHHMMSSZ-member", m.ID)
	}
	if m.Cluster == "" || m.Member == "" {
		bad("cluster and member are required")
	}
	if m.Job != "" && !jobPattern.MatchString(m.Job) {
		bad("job %q: want YYYYMMDDTHHMMSSZ-attempt", m.Job)
	}
	switch {
	case m.Flavor == gtid.MariaDB && m.Archive == ArchiveMbstream, m.Flavor == gtid.MySQL && m.Archive == ArchiveTar:
	default:
		bad("flavor %q with archive %q: want mariadb with mbstream or mysql with tar", m.Flavor, m.Archive)
	}
	if m.Compression != "zstd" {
		bad("compression %q: want zstd", m.Compression)
	}
	if m.Flavor == gtid.MariaDB || m.Flavor == gtid.MySQL {
		if err := checkGTIDBounds(m.Flavor, m.GTIDExecuted, m.GTIDExecutedMax); err != nil {
			bad("%v", err)
		}
	}
	if m.StartTime.IsZero() || m.EndTime.Before(m.StartTime) {
		bad("start_time %s and end_time %s: want a start no later than the end", m.StartTime, m.EndTime)
	}
	if m.RawBytes < 0 {
		bad("raw_bytes %d is negative", m.RawBytes)
	}
	if len(m.Objects) == 0 {
		bad("no objects")
	}
	var total int64
	for i, o := range m.Objects {
		if o.Name != objectName(i) || !objectPattern.MatchString(o.Name) {
			bad("object %d: name %q, want %q", i, o.Name, objectName(i))
		}
		if o.Size < 0 {
			bad("object %s: negative size %d", o.Name, o.Size)
		}
		if sum, err := hex.DecodeString(o.SHA256); err != nil || len(sum) != 32 || strings.ToLower(o.SHA256) != o.SHA256 {
			bad("object %s: sha256 %q is not 64 lower-case hex digits", o.Name, o.SHA256)
		}
		total += o.Size
	}
	if total != m.CompressedBytes {
		bad("compressed_bytes %d is not the objects' total %d", m.CompressedBytes, total)
	}
	return errors.Join(errs...)
}
