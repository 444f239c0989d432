package backup

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// binlogInfoTap watches an mbstream (xbstream) as it passes and keeps the contents of the file
// mariadb-backup writes the copy's binlog coordinates and GTID position to, so the manifest can
// say where the copy stands without unpacking it. It parses chunk headers only and never fails
// a write: a stream it cannot follow leaves err set, reported when the backup asks for the
// position.
//
// A chunk is: magic "XBSTCK01", flags (1 byte), type (1 byte: 'P' payload, 'E' end of file),
// path length (uint32 LE), path; a payload chunk goes on with its length (uint64 LE), offset
// (uint64 LE), crc32 (uint32 LE) and the payload.
type binlogInfoTap struct {
	hdr     []byte // the current chunk's header, as far as it has come
	skip    uint64 // payload bytes still to pass
	capture bool   // the payload being passed belongs to the binlog info file
	info    []byte
	found   bool
	err     error
}

const (
	chunkMagic     = "XBSTCK01"
	chunkFixed     = len(chunkMagic) + 1 + 1 + 4
	payloadHeader  = 8 + 8 + 4
	maxChunkPath   = 4096
	maxBinlogInfo  = 4096
	chunkTypeData  = 'P'
	chunkTypeEnd   = 'E'
	binlogInfoFile = "mariadb_backup_binlog_info"
	// xtrabackupBinlogInfo is the name older mariadb-backup versions use.
	xtrabackupBinlogInfo = "xtrabackup_binlog_info"
)

func (t *binlogInfoTap) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && t.err == nil {
		if t.skip > 0 {
			k := int(min(t.skip, uint64(len(p))))
			if t.capture {
				if len(t.info)+k > maxBinlogInfo {
					t.err = fmt.Errorf("mbstream: %s is larger than %d bytes", binlogInfoFile, maxBinlogInfo)
					break
				}
				t.info = append(t.info, p[:k]...)
			}
			t.skip -= uint64(k)
			p = p[k:]
			continue
		}
		need := t.headerSize()
		k := min(need-len(t.hdr), len(p))
		t.hdr = append(t.hdr, p[:k]...)
		p = p[k:]
		if len(t.hdr) == need && t.headerSize() == need {
			t.chunk()
		}
	}
	return n, nil
}

// headerSize is how many bytes the current chunk's header has, as far as what has arrived tells.
func (t *binlogInfoTap) headerSize() int {
	if len(t.hdr) < chunkFixed {
		return chunkFixed
	}
	pathLen := int(binary.LittleEndian.Uint32(t.hdr[chunkFixed-4:]))
	if pathLen > maxChunkPath {
		return chunkFixed // chunk reports it
	}
	size := chunkFixed + pathLen
	if t.hdr[len(chunkMagic)+1] == chunkTypeData {
		size += payloadHeader
	}
	return size
}

// chunk acts on a complete header.
func (t *binlogInfoTap) chunk() {
	h := t.hdr
	t.hdr = t.hdr[:0]
	if string(h[:len(chunkMagic)]) != chunkMagic {
		t.err = fmt.Errorf("mbstream: bad chunk magic %q", h[:len(chunkMagic)])
		return
	}
	pathLen := int(binary.LittleEndian.Uint32(h[chunkFixed-4:]))
	if pathLen > maxChunkPath {
		t.err = fmt.Errorf("mbstream: chunk path of %d bytes", pathLen)
		return
	}
	path := string(h[chunkFixed : chunkFixed+pathLen])
	isInfo := path == binlogInfoFile || path == xtrabackupBinlogInfo
	switch typ := h[len(chunkMagic)+1]; typ {
	case chunkTypeEnd:
		if isInfo {
			t.found = true
		}
	case chunkTypeData:
		t.skip = binary.LittleEndian.Uint64(h[chunkFixed+pathLen:])
		t.capture = isInfo
	default:
		t.err = fmt.Errorf("mbstream: chunk of unknown type %q for %s", typ, path)
	}
}

// position returns what the binlog info file said: binlog file, offset and GTID position.
func (t *binlogInfoTap) position() (Position, error) {
	if t.err != nil {
		return Position{}, t.err
	}
	if !t.found {
		return Position{}, errors.New("mbstream: the stream holds no " + binlogInfoFile + " (is the binlog on?)")
	}
	return parseBinlogInfo(t.info)
}

// Position is where a copy stands: its GTID position and, when the server writes a binlog, the
// binlog coordinates.
type Position struct {
	GTIDExecuted string
	// GTIDExecutedMax, when set, is all the copy may hold beyond GTIDExecuted (see
	// Manifest.GTIDExecutedMax).
	GTIDExecutedMax string
	BinlogFile      string
	BinlogPos       uint64
}

// parseBinlogInfo reads mariadb-backup's binlog info: "file<TAB>offset<TAB>gtid-position",
// the position missing while the server has written no GTID.
func parseBinlogInfo(b []byte) (Position, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) < 2 || len(fields) > 3 {
		return Position{}, fmt.Errorf("%s: want file, offset and GTID position, got %q", binlogInfoFile, line)
	}
	off, err := strconv.ParseUint(fields[1], 10, 64)
	if err != nil {
		return Position{}, fmt.Errorf("%s: offset %q: %w", binlogInfoFile, fields[1], err)
	}
	pos := Position{BinlogFile: fields[0], BinlogPos: off}
	if len(fields) == 3 { // a server that never wrote a GTID has none
		pos.GTIDExecuted = fields[2]
	}
	return pos, nil
}
