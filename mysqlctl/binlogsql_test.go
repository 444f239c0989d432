package mysqlctl_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/shoal-db/shoal/mysqlctl"
)

// mysqlbinlogOutput is the shape of mysqlbinlog's output for one row-based transaction.
const mysqlbinlogOutput = `# The proper term is pseudo_replica_mode, but we use this compatibility alias
# to make the statement usable on server versions 8.0.24 and older.
/*!50530 SET @@SESSION.PSEUDO_SLAVE_MODE=1*/;
/*!50003 SET @OLD_COMPLETION_TYPE=@@COMPLETION_TYPE,COMPLETION_TYPE=0*/;
DELIMITER /*!*/;
# at 4
#261201  4:50:01 server id 1  end_log_pos 127 CRC32 0x5b6c1c4e 	Start: binlog v 4
BINLOG '
SabDaQ8BAAAAegAAAH4AAAAAAAQAOS43LjAtMQ==
'/*!*/;
SET @@SESSION.GTID_NEXT= 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa:7'/*!*/;
# at 400
/*!\C utf8mb4 *//*!*/;
SET @@session.character_set_client=255/*!*/;
BEGIN
/*!*/;
COMMIT/*!*/;
SET @@SESSION.GTID_NEXT= 'AUTOMATIC' /* added by mysqlbinlog */ /*!*/;
DELIMITER ;
# End of log file
/*!50003 SET COMPLETION_TYPE=@OLD_COMPLETION_TYPE*/;
`

func split(t *testing.T, text string) ([]string, error) {
	t.Helper()
	var got []string
	err := mysqlctl.SplitBinlogSQL(strings.NewReader(text), func(s string) error { got = append(got, s); return nil })
	return got, err
}

func TestSplitBinlogSQL(t *testing.T) {
	got, err := split(t, mysqlbinlogOutput)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/*!50530 SET @@SESSION.PSEUDO_SLAVE_MODE=1*/",
		"/*!50003 SET @OLD_COMPLETION_TYPE=@@COMPLETION_TYPE,COMPLETION_TYPE=0*/",
		"BINLOG '\nSabDaQ8BAAAAegAAAH4AAAAAAAQAOS43LjAtMQ==\n'",
		"SET @@SESSION.GTID_NEXT= 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa:7'",
		"SET NAMES utf8mb4",
		"SET @@session.character_set_client=255",
		"BEGIN",
		"COMMIT",
		"SET @@SESSION.GTID_NEXT= 'AUTOMATIC' /* added by mysqlbinlog */",
		"/*!50003 SET COMPLETION_TYPE=@OLD_COMPLETION_TYPE*/",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("statements:\n%q\nwant\n%q", got, want)
	}

	// Cut short: the statements before the cut, then ErrUnterminated.
	cut := mysqlbinlogOutput[:strings.Index(mysqlbinlogOutput, "BEGIN")+8]
	got, err = split(t, cut)
	if !errors.Is(err, mysqlctl.ErrUnterminated) || len(got) != 6 {
		t.Fatalf("cut output: %d statements, %v; want 6 and ErrUnterminated", len(got), err)
	}
	if _, err := split(t, "DELIMITER a b\nSELECT 1a b\n"); err == nil {
		t.Fatal("a delimiter with a space was accepted")
	}
	// f's error stops the split.
	stop := errors.New("stop")
	n := 0
	err = mysqlctl.SplitBinlogSQL(strings.NewReader(mysqlbinlogOutput), func(string) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("f failing: %d calls, %v", n, err)
	}
}

func FuzzSplitBinlogSQL(f *testing.F) {
	f.Add(mysqlbinlogOutput)
	f.Add("DELIMITER //\nSELECT 1//\n# c\nSELECT\n2 //")
	f.Fuzz(func(t *testing.T, text string) {
		var stmts []string
		err := mysqlctl.SplitBinlogSQL(strings.NewReader(text), func(s string) error { stmts = append(stmts, s); return nil })
		for _, s := range stmts {
			if s == "" || s != strings.TrimSpace(s) {
				t.Fatalf("statement %q is empty or untrimmed", s)
			}
		}
		if err != nil && !errors.Is(err, mysqlctl.ErrUnterminated) && !strings.Contains(err.Error(), "delimiter") {
			t.Fatalf("unexpected error %v", err)
		}
	})
}
