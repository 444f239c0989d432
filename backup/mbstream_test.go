package backup

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"strings"
	"testing"
)

// chunk encodes one mbstream chunk: a payload chunk when data is not nil, an end chunk otherwise.
func chunk(path string, data []byte) []byte {
	var b bytes.Buffer
	b.WriteString(chunkMagic)
	b.WriteByte(0)
	if data == nil {
		b.WriteByte(chunkTypeEnd)
	} else {
		b.WriteByte(chunkTypeData)
	}
	binary.Write(&b, binary.LittleEndian, uint32(len(path)))
	b.WriteString(path)
	if data != nil {
		binary.Write(&b, binary.LittleEndian, uint64(len(data)))
		binary.Write(&b, binary.LittleEndian, uint64(0))
		binary.Write(&b, binary.LittleEndian, crc32.ChecksumIEEE(data))
		b.Write(data)
	}
	return b.Bytes()
}

func stream(chunks ...[]byte) []byte { return bytes.Join(chunks, nil) }

func TestBinlogInfoTap(t *testing.T) {
	big := bytes.Repeat([]byte("XBSTCK01"), 5000) // payload that looks like headers
	good := stream(chunk("ibdata1", big), chunk("ibdata1", nil),
		chunk(binlogInfoFile, []byte("binlog.000003\t385\t0-1-5,1-2-7\n")), chunk(binlogInfoFile, nil),
		chunk("backup-my.cnf", []byte("[mysqld]\n")), chunk("backup-my.cnf", nil))
	for _, tc := range []struct {
		name   string
		stream []byte
		want   Position
		err    string
	}{
		{"position", good, Position{GTIDExecuted: "0-1-5,1-2-7", BinlogFile: "binlog.000003", BinlogPos: 385}, ""},
		{"older name", stream(chunk(xtrabackupBinlogInfo, []byte("b.1\t4\t0-1-1\n")), chunk(xtrabackupBinlogInfo, nil)),
			Position{GTIDExecuted: "0-1-1", BinlogFile: "b.1", BinlogPos: 4}, ""},
		{"no gtid yet", stream(chunk(binlogInfoFile, []byte("b.1\t4\t\n")), chunk(binlogInfoFile, nil)),
			Position{BinlogFile: "b.1", BinlogPos: 4}, ""},
		{"no info file", stream(chunk("ibdata1", big), chunk("ibdata1", nil)), Position{}, "holds no"},
		{"info never ends", stream(chunk(binlogInfoFile, []byte("b.1\t4\t0-1-1\n"))), Position{}, "holds no"},
		{"bad magic", append([]byte("XBSTCK02"), good[8:]...), Position{}, "magic"},
		{"unknown chunk type", append(append([]byte(chunkMagic), 0, 'S'), good[10:]...), Position{}, "unknown type"},
		{"huge path", append([]byte(chunkMagic), 0, 'P', 0xff, 0xff, 0xff, 0x7f), Position{}, "path of"},
		{"garbled info", stream(chunk(binlogInfoFile, []byte("nonsense\n")), chunk(binlogInfoFile, nil)), Position{}, "want file"},
		{"bad offset", stream(chunk(binlogInfoFile, []byte("b.1\tx\t0-1-1\n")), chunk(binlogInfoFile, nil)), Position{}, "offset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Every way of cutting the stream into writes must give the same answer.
			for _, size := range []int{1, 3, 13, 4096, len(tc.stream) + 1} {
				var tap binlogInfoTap
				for b := tc.stream; len(b) > 0; {
					k := min(size, len(b))
					if n, err := tap.Write(b[:k]); n != k || err != nil {
						t.Fatalf("write returned %d, %v", n, err)
					}
					b = b[k:]
				}
				got, err := tap.position()
				switch {
				case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
					t.Fatalf("writes of %d: got %v, %v; want an error containing %q", size, got, err, tc.err)
				case tc.err == "" && (err != nil || got != tc.want):
					t.Fatalf("writes of %d: got %+v, %v; want %+v", size, got, err, tc.want)
				}
			}
		})
	}
}

func FuzzBinlogInfoTap(f *testing.F) {
	f.Add(stream(chunk(binlogInfoFile, []byte("binlog.000003\t385\t0-1-5\n")), chunk(binlogInfoFile, nil)), 7)
	f.Add(stream(chunk("a", []byte("xx")), chunk("a", nil)), 1)
	f.Fuzz(func(t *testing.T, b []byte, size int) {
		size = max(1, size%512)
		var tap binlogInfoTap
		for len(b) > 0 {
			k := min(size, len(b))
			if n, err := tap.Write(b[:k]); n != k || err != nil {
				t.Fatalf("write returned %d, %v", n, err)
			}
			b = b[k:]
		}
		if len(tap.info) > maxBinlogInfo || cap(tap.hdr) > chunkFixed+maxChunkPath+payloadHeader+64 {
			t.Fatalf("tap holds %d info bytes and a header buffer of %d", len(tap.info), cap(tap.hdr))
		}
		_, _ = tap.position()
	})
}
