package gtid

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
)

const (
	uuidA = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	uuidB = "4a1b2c3d-0000-1111-2222-333344445555"
	max64 = "18446744073709551615"
)

func TestParse(t *testing.T) {
	tests := []struct {
		flavor Flavor
		in     string
		want   string // String() of the result
	}{
		{MySQL, "", ""},
		{MySQL, " \n\t", ""},
		{MySQL, uuidA + ":1-5", uuidA + ":1-5"},
		{MySQL, uuidA + ":5", uuidA + ":5"},
		{MySQL, uuidA + ":5-5", uuidA + ":5"},
		{MySQL, uuidA + ":007", uuidA + ":7"},
		{MySQL, strings.ToUpper(uuidA) + ":1", uuidA + ":1"},
		{MySQL, uuidA + ":1-3:4-5", uuidA + ":1-5"},
		{MySQL, uuidA + ":7:1-3:2-5", uuidA + ":1-5:7"},
		{MySQL, uuidA + ":1-5:3:2-4", uuidA + ":1-5"},
		{MySQL, uuidA + ":1:3:5", uuidA + ":1:3:5"},
		{MySQL, uuidB + ":1-3,\n" + uuidA + ":2", uuidA + ":2," + uuidB + ":1-3"},
		{MySQL, " " + uuidA + ":1-3 ,\n " + uuidA + ":4 \n", uuidA + ":1-4"},
		{MySQL, uuidA + " : 1 :\t3", uuidA + ":1:3"},
		{MySQL, uuidA + ":1-5:mytag:1-3:9", uuidA + ":1-5:mytag:1-3:9"},
		{MySQL, uuidA + ":MyTag:1", uuidA + ":mytag:1"},
		{MySQL, uuidA + ":t:1,\n" + uuidA + ":T:2", uuidA + ":t:1-2"},
		{MySQL, uuidA + ":b:1:a:2:3", uuidA + ":a:2-3:b:1"},
		{MySQL, uuidA + ":tag:1," + uuidA + ":2", uuidA + ":2:tag:1"},
		{MySQL, uuidA + ":a:1:b:2:a:3", uuidA + ":a:1:3:b:2"},
		{MySQL, uuidA + ":_x9:1", uuidA + ":_x9:1"},
		{MySQL, uuidA + ":" + strings.Repeat("t", 32) + ":1", uuidA + ":" + strings.Repeat("t", 32) + ":1"},
		{MySQL, uuidA + ":1-" + max64, uuidA + ":1-" + max64},
		{MySQL, uuidA + ":" + max64 + ":18446744073709551614", uuidA + ":18446744073709551614-" + max64},

		{MariaDB, "", ""},
		{MariaDB, "\n", ""},
		{MariaDB, "0-1-100", "0-1-100"},
		{MariaDB, "0-2-110,0-1-100", "0-1-100,0-2-110"},
		{MariaDB, "1-1-5,\n0-1-3", "0-1-3,1-1-5"},
		{MariaDB, " 0-1-1 ,\t0-2-2 ", "0-1-1,0-2-2"},
		{MariaDB, "0-1-5,0-1-3", "0-1-5"},
		{MariaDB, "0-1-3,0-1-5", "0-1-5"},
		{MariaDB, "0-1-0", ""},
		{MariaDB, "0-1-0,0-1-4,0-1-0", "0-1-4"},
		{MariaDB, "10-1-1,9-1-1", "9-1-1,10-1-1"},
		{MariaDB, "0-10-1,0-9-1", "0-9-1,0-10-1"},
		{MariaDB, "4294967295-4294967295-" + max64, "4294967295-4294967295-" + max64},
	}
	for _, tt := range tests {
		got, err := Parse(tt.flavor, tt.in)
		if err != nil {
			t.Errorf("Parse(%s, %q): %v", tt.flavor, tt.in, err)
			continue
		}
		if got.String() != tt.want {
			t.Errorf("Parse(%s, %q) = %q, want %q", tt.flavor, tt.in, got.String(), tt.want)
		}
		if got.Flavor() != tt.flavor {
			t.Errorf("Parse(%s, %q).Flavor() = %q", tt.flavor, tt.in, got.Flavor())
		}
		if got.IsEmpty() != (tt.want == "") {
			t.Errorf("Parse(%s, %q).IsEmpty() = %v", tt.flavor, tt.in, got.IsEmpty())
		}
		checkGTIDInvariants(t, got)
		checkRoundTrip(t, got)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		flavor Flavor
		in     string
	}{
		{MySQL, "x"},
		{MySQL, uuidA},
		{MySQL, uuidA + ":"},
		{MySQL, uuidA + "::1"},
		{MySQL, uuidA + ":1:"},
		{MySQL, uuidA + ":0"},
		{MySQL, uuidA + ":0-3"},
		{MySQL, uuidA + ":5-3"},
		{MySQL, uuidA + ":5-4"},
		{MySQL, uuidA + ":1-"},
		{MySQL, uuidA + ":-1"},
		{MySQL, uuidA + ":1-2-3"},
		{MySQL, uuidA + ":1 - 2"},
		{MySQL, uuidA + ":1 2"},
		{MySQL, uuidA + ":+1"},
		{MySQL, uuidA + ":0x10"},
		{MySQL, uuidA + ":18446744073709551616"},
		{MySQL, uuidA + ":1-18446744073709551616"},
		{MySQL, uuidA + ":tag"},
		{MySQL, uuidA + ":1:tag"},
		{MySQL, uuidA + ":a:b:1"},
		{MySQL, uuidA + ":" + strings.Repeat("t", 33) + ":1"},
		{MySQL, uuidA + ":ta-g:1"},
		{MySQL, uuidA + ":t.g:1"},
		{MySQL, uuidA + ":9tag:1"},
		{MySQL, uuidA + ":tåg:1"},
		{MySQL, "3e11fa47-71ca-11e1-9e33-c80aa942956g:1"},
		{MySQL, "3e11fa47-71ca-11e1-9e33-c80aa942956:1"},
		{MySQL, "3e11fa4771ca11e19e33c80aa9429562:1"},
		{MySQL, "3e11fa47+71ca-11e1-9e33-c80aa9429562:1"},
		{MySQL, "{" + uuidA + "}:1"},
		{MySQL, uuidA + ":1,"},
		{MySQL, "," + uuidA + ":1"},
		{MySQL, uuidA + ":1,,\n" + uuidB + ":1"},
		{MySQL, uuidA + ":1;" + uuidB + ":1"},
		{MySQL, "1-5"},
		{MySQL, "0-1-5"},

		{MariaDB, "0-1"},
		{MariaDB, "0-1-2-3"},
		{MariaDB, "a-1-2"},
		{MariaDB, "0-1-"},
		{MariaDB, "-1-2"},
		{MariaDB, "0--2"},
		{MariaDB, "0 -1-2"},
		{MariaDB, "0-1-+2"},
		{MariaDB, "4294967296-1-1"},
		{MariaDB, "0-4294967296-1"},
		{MariaDB, "0-1-18446744073709551616"},
		{MariaDB, "0-1-1,"},
		{MariaDB, "0-1-1,,0-2-2"},
		{MariaDB, "0-1-[1-5]"},
		{MariaDB, uuidA + ":1"},

		{"percona", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, err := Parse(tt.flavor, tt.in)
		if err == nil {
			t.Errorf("Parse(%s, %q) = %q, want error", tt.flavor, tt.in, got)
			continue
		}
		if !errors.Is(err, ErrBadSet) {
			t.Errorf("Parse(%s, %q) error %v does not wrap ErrBadSet", tt.flavor, tt.in, err)
		}
		if !strings.Contains(err.Error(), strconv.Quote(tt.in)) {
			t.Errorf("Parse(%s, %q) error %q does not quote the input", tt.flavor, tt.in, err)
		}
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil {
			t.Error("MustParse did not panic on a bad set")
		}
	}()
	MustParse(MySQL, "nonsense")
}

func TestSetOperations(t *testing.T) {
	tests := []struct {
		name           string
		flavor         Flavor
		a, b           string
		union, aMinusB string
		aHasB, bHasA   bool
		aCount, bCount uint64
	}{
		{"adjacent merge", MySQL, uuidA + ":1-3", uuidA + ":4-5",
			uuidA + ":1-5", uuidA + ":1-3", false, false, 3, 2},
		{"split interval", MySQL, uuidA + ":1-10", uuidA + ":4-6",
			uuidA + ":1-10", uuidA + ":1-3:7-10", true, false, 10, 3},
		{"cut both ends", MySQL, uuidA + ":1-10", uuidA + ":1-2:9-12",
			uuidA + ":1-12", uuidA + ":3-8", false, false, 10, 6},
		{"many holes", MySQL, uuidA + ":1-20", uuidA + ":2:4-5:9-11:20",
			uuidA + ":1-20", uuidA + ":1:3:6-8:12-19", true, false, 20, 7},
		{"hole spans intervals", MySQL, uuidA + ":1-3:5-7:9-10", uuidA + ":2-9",
			uuidA + ":1-10", uuidA + ":1:10", false, false, 8, 8},
		{"covered", MySQL, uuidA + ":3-4", uuidA + ":1-10",
			uuidA + ":1-10", "", false, true, 2, 10},
		{"equal", MySQL, uuidA + ":1-3:5," + uuidB + ":1", uuidB + ":1," + uuidA + ":5:1-3",
			uuidA + ":1-3:5," + uuidB + ":1", "", true, true, 5, 5},
		{"other uuid", MySQL, uuidA + ":1-5", uuidB + ":1-5",
			uuidA + ":1-5," + uuidB + ":1-5", uuidA + ":1-5", false, false, 5, 5},
		{"empty b", MySQL, uuidA + ":1-5", "",
			uuidA + ":1-5", uuidA + ":1-5", true, false, 5, 0},
		{"empty a", MySQL, "", uuidA + ":1-5",
			uuidA + ":1-5", "", false, true, 0, 5},
		{"both empty", MySQL, "", "", "", "", true, true, 0, 0},
		{"tagged subtract", MySQL, uuidA + ":1-5:t:1-5", uuidA + ":t:3",
			uuidA + ":1-5:t:1-5", uuidA + ":1-5:t:1-2:4-5", true, false, 10, 1},
		{"tag is its own source", MySQL, uuidA + ":1-3", uuidA + ":t:1-3",
			uuidA + ":1-3:t:1-3", uuidA + ":1-3", false, false, 3, 3},
		{"top of range", MySQL, uuidA + ":1-" + max64, uuidA + ":" + max64,
			uuidA + ":1-" + max64, uuidA + ":1-18446744073709551614", true, false, math.MaxUint64, 1},
		{"adjacent at top", MySQL, uuidA + ":1-18446744073709551614", uuidA + ":" + max64,
			uuidA + ":1-" + max64, uuidA + ":1-18446744073709551614", false, false, math.MaxUint64 - 1, 1},
		{"count saturates", MySQL, uuidA + ":1-" + max64 + "," + uuidB + ":1", uuidA + ":1",
			uuidA + ":1-" + max64 + "," + uuidB + ":1", uuidA + ":2-" + max64 + "," + uuidB + ":1",
			true, false, math.MaxUint64, 1},

		{"mariadb errant", MariaDB, "0-1-105", "0-1-100,0-2-110",
			"0-1-105,0-2-110", "0-1-[101-105]", false, false, 105, 210},
		{"mariadb behind", MariaDB, "0-1-100", "0-1-100,0-2-110",
			"0-1-100,0-2-110", "", false, true, 100, 210},
		{"mariadb single left", MariaDB, "0-1-5", "0-1-4",
			"0-1-5", "0-1-[5]", true, false, 5, 4},
		{"mariadb domains", MariaDB, "0-1-5,1-1-7", "1-1-9,2-3-1",
			"0-1-5,1-1-9,2-3-1", "0-1-5", false, false, 12, 10},
		{"mariadb equal", MariaDB, "0-1-5,0-2-3", "0-2-3,0-1-5,0-1-2",
			"0-1-5,0-2-3", "", true, true, 8, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := MustParse(tt.flavor, tt.a), MustParse(tt.flavor, tt.b)
			aString, bString := a.String(), b.String()

			u, err := a.Union(b)
			if err != nil || u.String() != tt.union {
				t.Errorf("Union = %q, %v; want %q", u, err, tt.union)
			}
			if u2, _ := b.Union(a); u2.String() != tt.union {
				t.Errorf("reverse Union = %q, want %q", u2, tt.union)
			}
			d, err := a.Subtract(b)
			if err != nil || d.String() != tt.aMinusB {
				t.Errorf("Subtract = %q, %v; want %q", d, err, tt.aMinusB)
			}
			if got, err := a.Contains(b); err != nil || got != tt.aHasB {
				t.Errorf("a.Contains(b) = %v, %v; want %v", got, err, tt.aHasB)
			}
			if got, err := b.Contains(a); err != nil || got != tt.bHasA {
				t.Errorf("b.Contains(a) = %v, %v; want %v", got, err, tt.bHasA)
			}
			wantEqual := tt.aHasB && tt.bHasA
			if got, err := a.Equal(b); err != nil || got != wantEqual {
				t.Errorf("Equal = %v, %v; want %v", got, err, wantEqual)
			}
			if a.Count() != tt.aCount || b.Count() != tt.bCount {
				t.Errorf("Count = %d, %d; want %d, %d", a.Count(), b.Count(), tt.aCount, tt.bCount)
			}
			for _, s := range []Set{u, d} {
				checkGTIDInvariants(t, s)
				if s.Flavor() != tt.flavor {
					t.Errorf("result %q has flavor %q", s, s.Flavor())
				}
			}
			if a.String() != aString || b.String() != bString {
				t.Errorf("operands changed: %q, %q; were %q, %q", a, b, aString, bString)
			}
		})
	}
}

func TestSetMariaDBErrant(t *testing.T) {
	// The old primary wrote 101-105 after the new primary (server 2) had taken over domain 0.
	oldPrimary := MustParse(MariaDB, "0-1-105")
	newPrimary := MustParse(MariaDB, "0-1-100,0-2-110")
	ok, err := newPrimary.Contains(oldPrimary)
	if err != nil || ok {
		t.Fatalf("new primary contains old primary = %v, %v; want false", ok, err)
	}
	errant, err := oldPrimary.Subtract(newPrimary)
	if err != nil || errant.String() != "0-1-[101-105]" || errant.Count() != 5 {
		t.Fatalf("errant = %q (count %d), %v; want 0-1-[101-105]", errant, errant.Count(), err)
	}
	// A replica that stopped at 0-1-100 is fine, and so is one already following server 2.
	for _, pos := range []string{"0-1-100", "0-1-100,0-2-107", "0-2-110,0-1-99"} {
		replica := MustParse(MariaDB, pos)
		if ok, err := newPrimary.Contains(replica); err != nil || !ok {
			t.Errorf("new primary contains %q = %v, %v; want true", pos, ok, err)
		}
	}
}

func TestSetMariaDBFormat(t *testing.T) {
	mid := MustParse(MariaDB, "0-1-10,1-2-3")
	mid, _ = mid.Subtract(MustParse(MariaDB, "0-1-4"))
	holes, _ := mid.Union(MustParse(MariaDB, "0-1-2,0-3-1"))
	if got, want := holes.String(), "0-1-[1-2,5-10],0-3-1,1-2-3"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got, want := holes.MariaDBPosition(), "0-1-10,1-2-3"; got != want {
		t.Errorf("MariaDBPosition = %q, want %q", got, want)
	}
	if got, want := holes.Count(), uint64(2+6+1+3); got != want {
		t.Errorf("Count = %d, want %d", got, want)
	}
}

func TestSetMariaDBPosition(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"0-1-100", "0-1-100"},
		{"0-1-100,0-2-110,1-5-7", "0-2-110,1-5-7"},
		{"0-3-10,0-2-10,0-4-9", "0-2-10"},
		{"10-1-1,9-1-1,0-7-3", "0-7-3,9-1-1,10-1-1"},
	}
	for _, tt := range tests {
		if got := MustParse(MariaDB, tt.in).MariaDBPosition(); got != tt.want {
			t.Errorf("MariaDBPosition(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := MustParse(MySQL, uuidA+":1").MariaDBPosition(); got != "" {
		t.Errorf("MariaDBPosition of a MySQL set = %q, want empty", got)
	}
}

func TestSetDomains(t *testing.T) {
	got := MustParse(MariaDB, "0-1-100,0-2-110,3-1-7,0-3-4").Domains()
	if len(got) != 2 || got[0] != 110 || got[3] != 7 {
		t.Errorf("Domains = %v, want map[0:110 3:7]", got)
	}
	if got := MustParse(MariaDB, "").Domains(); got == nil || len(got) != 0 {
		t.Errorf("Domains of empty MariaDB set = %#v, want empty map", got)
	}
	if got := MustParse(MySQL, uuidA+":1").Domains(); got != nil {
		t.Errorf("Domains of a MySQL set = %v, want nil", got)
	}
}

func TestMoreAdvanced(t *testing.T) {
	tests := []struct {
		name   string
		flavor Flavor
		a, b   string
		want   int
	}{
		{"equal", MySQL, uuidA + ":1-5", uuidA + ":1-5", 0},
		{"both empty", MySQL, "", "", 0},
		{"superset", MySQL, uuidA + ":1-6", uuidA + ":1-5", 1},
		{"subset", MySQL, uuidA + ":1-5", uuidA + ":1-6", -1},
		{"empty is behind", MySQL, "", uuidA + ":1", -1},
		{"incomparable, more transactions", MySQL, uuidA + ":1-5," + uuidB + ":1", uuidA + ":1-3:7-8", 1},
		{"incomparable, fewer transactions", MySQL, uuidA + ":1-3", uuidB + ":1-4", -1},
		{"incomparable tie", MySQL, uuidA + ":1-3", uuidB + ":1-3", 0},
		{"incomparable beyond 2^64", MySQL, uuidA + ":1-" + max64 + "," + uuidB + ":1-2",
			uuidA + ":1-" + max64 + ":t:1", 1},
		{"mariadb superset", MariaDB, "0-1-100,0-2-110", "0-1-100", 1},
		{"mariadb incomparable by domain", MariaDB, "0-1-100,0-2-110", "0-1-105", 1},
		{"mariadb incomparable sums domains", MariaDB, "0-1-10,1-1-10", "0-2-15,1-2-4", 1},
		{"mariadb incomparable tie", MariaDB, "0-1-10", "0-2-10", 0},
	}
	for _, tt := range tests {
		a, b := MustParse(tt.flavor, tt.a), MustParse(tt.flavor, tt.b)
		if got, err := MoreAdvanced(a, b); err != nil || got != tt.want {
			t.Errorf("%s: MoreAdvanced = %d, %v; want %d", tt.name, got, err, tt.want)
		}
		if got, err := MoreAdvanced(b, a); err != nil || got != -tt.want {
			t.Errorf("%s: reversed MoreAdvanced = %d, %v; want %d", tt.name, got, err, -tt.want)
		}
	}
}

func TestSetZeroValue(t *testing.T) {
	var zero Set
	if !zero.IsEmpty() || zero.String() != "" || zero.Flavor() != "" || zero.Count() != 0 {
		t.Errorf("zero value: empty %v, string %q, flavor %q, count %d", zero.IsEmpty(), zero, zero.Flavor(), zero.Count())
	}
	if zero.MariaDBPosition() != "" || zero.Domains() != nil {
		t.Errorf("zero value: position %q, domains %v", zero.MariaDBPosition(), zero.Domains())
	}
	for _, f := range []Flavor{MySQL, MariaDB} {
		in := uuidA + ":1-5"
		if f == MariaDB {
			in = "0-1-5"
		}
		set := MustParse(f, in)
		if u, err := zero.Union(set); err != nil || u.String() != in || u.Flavor() != f {
			t.Errorf("%s: zero ∪ set = %q (%s), %v", f, u, u.Flavor(), err)
		}
		if u, err := set.Union(zero); err != nil || u.String() != in || u.Flavor() != f {
			t.Errorf("%s: set ∪ zero = %q (%s), %v", f, u, u.Flavor(), err)
		}
		if d, err := zero.Subtract(set); err != nil || !d.IsEmpty() || d.Flavor() != f {
			t.Errorf("%s: zero − set = %q (%s), %v", f, d, d.Flavor(), err)
		}
		if d, err := set.Subtract(zero); err != nil || d.String() != in {
			t.Errorf("%s: set − zero = %q, %v", f, d, err)
		}
		if ok, err := set.Contains(zero); err != nil || !ok {
			t.Errorf("%s: set ⊇ zero = %v, %v", f, ok, err)
		}
		if ok, err := zero.Contains(set); err != nil || ok {
			t.Errorf("%s: zero ⊇ set = %v, %v", f, ok, err)
		}
		if ok, err := zero.Equal(MustParse(f, "")); err != nil || !ok {
			t.Errorf("%s: zero = flavored empty set: %v, %v", f, ok, err)
		}
		if got, err := MoreAdvanced(zero, set); err != nil || got != -1 {
			t.Errorf("%s: MoreAdvanced(zero, set) = %d, %v", f, got, err)
		}
	}
	if ok, err := zero.Equal(Set{}); err != nil || !ok {
		t.Errorf("zero = zero: %v, %v", ok, err)
	}
}

func TestSetFlavorMismatch(t *testing.T) {
	pairs := [][2]Set{
		{MustParse(MySQL, uuidA+":1"), MustParse(MariaDB, "0-1-1")},
		// Empty sets still carry their flavor, so mixing them is caught early.
		{MustParse(MySQL, ""), MustParse(MariaDB, "")},
	}
	for _, p := range pairs {
		for _, ab := range [][2]Set{p, {p[1], p[0]}} {
			a, b := ab[0], ab[1]
			_, errU := a.Union(b)
			_, errS := a.Subtract(b)
			_, errC := a.Contains(b)
			_, errE := a.Equal(b)
			_, errM := MoreAdvanced(a, b)
			for i, err := range []error{errU, errS, errC, errE, errM} {
				if !errors.Is(err, ErrFlavorMismatch) {
					t.Errorf("%s %q vs %s %q: operation %d: error %v, want ErrFlavorMismatch",
						a.Flavor(), a, b.Flavor(), b, i, err)
				}
			}
		}
	}
}

// checkGTIDInvariants verifies the canonical representation that Equal and String rely on.
func checkGTIDInvariants(t *testing.T, s Set) {
	t.Helper()
	for src, ivs := range s.ranges {
		if len(ivs) == 0 {
			t.Errorf("set %q: source %+v has no intervals", s, src)
		}
		for i, iv := range ivs {
			if iv.start == 0 || iv.end < iv.start {
				t.Errorf("set %q: source %+v: bad interval %+v", s, src, iv)
			}
			if i > 0 && iv.start-1 <= ivs[i-1].end {
				t.Errorf("set %q: source %+v: intervals %+v, %+v not sorted and merged", s, src, ivs[i-1], iv)
			}
		}
		switch s.flavor {
		case MySQL:
			if _, err := parseUUID(src.uuid); err != nil || src.uuid != strings.ToLower(src.uuid) ||
				src.tag != strings.ToLower(src.tag) || src.domain != 0 || src.server != 0 {
				t.Errorf("set %q: bad MySQL source %+v", s, src)
			}
			if src.tag != "" {
				if _, err := parseTag(src.tag); err != nil {
					t.Errorf("set %q: bad tag in %+v", s, src)
				}
			}
		case MariaDB:
			if src.uuid != "" || src.tag != "" {
				t.Errorf("set %q: bad MariaDB source %+v", s, src)
			}
		default:
			t.Errorf("set %q of no flavor holds sources", s)
		}
	}
}

// formatable reports whether Parse can read s.String() back.
func formatable(s Set) bool {
	if s.flavor != MariaDB {
		return true
	}
	for _, ivs := range s.ranges {
		if len(ivs) != 1 || ivs[0].start != 1 {
			return false
		}
	}
	return true
}

// checkRoundTrip verifies that a formatable set survives String and Parse unchanged.
func checkRoundTrip(t *testing.T, s Set) {
	t.Helper()
	if !formatable(s) || s.flavor == "" {
		return
	}
	text := s.String()
	back, err := Parse(s.flavor, text)
	if err != nil {
		t.Errorf("reparse %q: %v", text, err)
		return
	}
	if eq, err := back.Equal(s); err != nil || !eq {
		t.Errorf("reparse %q = %q, %v", text, back, err)
	}
	if back.String() != text {
		t.Errorf("reparse %q formats as %q", text, back)
	}
}

func TestSetOriginated(t *testing.T) {
	const a, b = "3e11fa47-71ca-11e1-9e33-c80aa9429562", "4f22fb58-82db-22f2-af44-d91bb0530673"
	tests := []struct {
		flavor Flavor
		set    string
		uuid   string
		server uint32
		want   string
	}{
		{MySQL, a + ":1-5:tag:1-2," + b + ":1-9", strings.ToUpper(a), 7, a + ":1-5:tag:1-2"},
		{MySQL, b + ":1-9", a, 7, ""},
		{MySQL, a + ":1-5", "", 0, ""}, // an unknown UUID originated nothing
		{MariaDB, "0-1-100,0-2-110,1-2-4", "", 2, "0-2-110,1-2-4"},
		{MariaDB, "0-1-100", a, 2, ""},
	}
	for _, tt := range tests {
		got := MustParse(tt.flavor, tt.set).Originated(tt.uuid, tt.server)
		if got.String() != tt.want || got.Flavor() != tt.flavor {
			t.Errorf("%s %q originated by %q/%d = %q (%s), want %q", tt.flavor, tt.set, tt.uuid, tt.server, got, got.Flavor(), tt.want)
		}
	}
}
