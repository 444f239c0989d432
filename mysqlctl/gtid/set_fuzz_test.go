package gtid

import (
	"testing"
)

// gtidSeeds are valid and nearly valid sets of both flavors, for the fuzzer to mutate.
var gtidSeeds = []string{
	"",
	uuidA + ":1-5:7",
	uuidA + ":1-3,\n" + uuidB + ":2:4-9",
	uuidA + ":1-5:mytag:1-3:9," + uuidB + ":_t:1",
	uuidA + ":3-4:1:Tag:7:6",
	uuidA + ":1-" + max64,
	uuidA + ":0",
	uuidA + ":tag",
	"0-1-100,0-2-110",
	"0-1-105",
	"1-1-5,\n0-1-3,0-1-0",
	"4294967295-4294967295-" + max64,
	"0-1-",
}

func fuzzFlavor(mariadb bool) Flavor {
	if mariadb {
		return MariaDB
	}
	return MySQL
}

func FuzzParse(f *testing.F) {
	for _, s := range gtidSeeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, in string, mariadb bool) {
		s, err := Parse(fuzzFlavor(mariadb), in)
		if err != nil {
			return
		}
		checkGTIDInvariants(t, s)
		checkRoundTrip(t, s)
		if s.IsEmpty() != (s.String() == "") || s.IsEmpty() != (s.Count() == 0) {
			t.Errorf("%q: IsEmpty %v, String %q, Count %d disagree", in, s.IsEmpty(), s, s.Count())
		}
		if mariadb {
			// A parsed MariaDB set is a binlog state; its position must parse and be contained in it.
			pos, err := Parse(MariaDB, s.MariaDBPosition())
			if err != nil {
				t.Fatalf("%q: position %q does not parse: %v", in, s.MariaDBPosition(), err)
			}
			if ok, _ := s.Contains(pos); !ok {
				t.Errorf("%q: position %q not contained in %q", in, pos, s)
			}
			if len(pos.Domains()) != len(s.Domains()) {
				t.Errorf("%q: position %q covers domains %v, set %v", in, pos, pos.Domains(), s.Domains())
			}
		}
	})
}

// FuzzSetAlgebra checks set identities on pairs of parsed sets.
func FuzzSetAlgebra(f *testing.F) {
	for i, a := range gtidSeeds {
		b := gtidSeeds[(i+1)%len(gtidSeeds)]
		f.Add(a, b, false)
		f.Add(a, b, true)
		f.Add(a, a, false)
	}
	f.Fuzz(func(t *testing.T, inA, inB string, mariadb bool) {
		flavor := fuzzFlavor(mariadb)
		a, errA := Parse(flavor, inA)
		b, errB := Parse(flavor, inB)
		if errA != nil || errB != nil {
			return
		}
		union := mustGTID(t)(a.Union(b))
		diff := mustGTID(t)(a.Subtract(b))
		inter := mustGTID(t)(a.Subtract(diff)) // a ∩ b
		for _, s := range []Set{union, diff, inter} {
			checkGTIDInvariants(t, s)
			checkRoundTrip(t, s)
		}
		holds := func(what string, ok bool, err error) {
			t.Helper()
			if err != nil || !ok {
				t.Errorf("a=%q b=%q: %s does not hold (%v)", a, b, what, err)
			}
		}
		ok, err := union.Contains(a)
		holds("a∪b ⊇ a", ok, err)
		ok, err = union.Contains(b)
		holds("a∪b ⊇ b", ok, err)
		ok, err = union.Equal(mustGTID(t)(b.Union(a)))
		holds("a∪b = b∪a", ok, err)
		ok, err = a.Contains(diff)
		holds("a ⊇ a−b", ok, err)
		ok, err = diff.Equal(mustGTID(t)(diff.Subtract(b)))
		holds("(a−b) ∩ b = ∅", ok, err)
		ok, err = b.Contains(inter)
		holds("b ⊇ a∩b", ok, err)
		ok, err = a.Equal(mustGTID(t)(diff.Union(inter)))
		holds("(a−b) ∪ (a∩b) = a", ok, err)
		ok, err = union.Equal(mustGTID(t)(diff.Union(b)))
		holds("(a−b) ∪ b = a∪b", ok, err)
		ok, err = mustGTID(t)(union.Subtract(a)).Equal(mustGTID(t)(b.Subtract(a)))
		holds("(a∪b)−a = b−a", ok, err)

		aHasB, _ := a.Contains(b)
		bHasA, _ := b.Contains(a)
		equal, _ := a.Equal(b)
		if equal != (aHasB && bHasA) {
			t.Errorf("a=%q b=%q: Equal %v but a⊇b %v, b⊇a %v", a, b, equal, aHasB, bHasA)
		}
		if aHasB != mustGTID(t)(b.Subtract(a)).IsEmpty() {
			t.Errorf("a=%q b=%q: a⊇b is %v but b−a = %q", a, b, aHasB, mustGTID(t)(b.Subtract(a)))
		}

		// |a∪b| + |a∩b| = |a| + |b|, exactly.
		if l, r := addUint128(union.count(), inter.count()), addUint128(a.count(), b.count()); l != r {
			t.Errorf("a=%q b=%q: |a∪b|+|a∩b| = %v, |a|+|b| = %v", a, b, l, r)
		}

		ab, err := MoreAdvanced(a, b)
		ba, _ := MoreAdvanced(b, a)
		if err != nil || ab != -ba {
			t.Errorf("a=%q b=%q: MoreAdvanced %d, reversed %d (%v)", a, b, ab, ba, err)
		}
		switch {
		case equal && ab != 0, aHasB && !bHasA && ab != 1, bHasA && !aHasB && ab != -1:
			t.Errorf("a=%q b=%q: MoreAdvanced = %d with a⊇b %v, b⊇a %v", a, b, ab, aHasB, bHasA)
		}

		if mariadb {
			// The errant-transaction rule: a ⊇ b iff no (domain, server) of b is beyond a's.
			rule := true
			for src, ivs := range b.ranges {
				if mine, ok := a.ranges[src]; !ok || mine[0].end < ivs[0].end {
					rule = false
				}
			}
			if rule != aHasB {
				t.Errorf("a=%q b=%q: a⊇b is %v, per-source seqno rule says %v", a, b, aHasB, rule)
			}
		}
	})
}

// FuzzSetModel compares the operations against a naive model of sets of (source, seqno)
// pairs, on inputs whose sequence numbers are small enough to enumerate.
func FuzzSetModel(f *testing.F) {
	f.Add(uuidA+":1-5:7:t:2", uuidA+":3-9:t:1-2", false)
	f.Add(uuidA+":1:3:5:7,"+uuidB+":2-4", uuidA+":2-6,"+uuidB+":4", false)
	f.Add("0-1-105,1-1-3", "0-1-100,0-2-110", true)
	f.Add("0-1-5,0-2-8", "0-2-3", true)
	f.Fuzz(func(t *testing.T, inA, inB string, mariadb bool) {
		flavor := fuzzFlavor(mariadb)
		a, errA := Parse(flavor, inA)
		b, errB := Parse(flavor, inB)
		if errA != nil || errB != nil || !small(a) || !small(b) {
			return
		}
		ma, mb := toModel(a), toModel(b)
		mUnion, mDiff := gtidModel{}, gtidModel{}
		for g := range ma {
			mUnion[g] = true
			if !mb[g] {
				mDiff[g] = true
			}
		}
		for g := range mb {
			mUnion[g] = true
		}
		if got := toModel(mustGTID(t)(a.Union(b))); !got.equal(mUnion) {
			t.Errorf("a=%q b=%q: Union = %q", a, b, mustGTID(t)(a.Union(b)))
		}
		if got := toModel(mustGTID(t)(a.Subtract(b))); !got.equal(mDiff) {
			t.Errorf("a=%q b=%q: Subtract = %q", a, b, mustGTID(t)(a.Subtract(b)))
		}
		if ok, _ := a.Contains(b); ok != (len(mUnion) == len(ma)) {
			t.Errorf("a=%q b=%q: Contains = %v", a, b, ok)
		}
		if ok, _ := a.Equal(b); ok != ma.equal(mb) {
			t.Errorf("a=%q b=%q: Equal = %v", a, b, ok)
		}
		if a.Count() != uint64(len(ma)) {
			t.Errorf("a=%q: Count = %d, model has %d", a, a.Count(), len(ma))
		}
	})
}

// modelLimit bounds the number of transactions FuzzSetModel enumerates per set.
const modelLimit = 1 << 12

type gtidModelEntry struct {
	src   gtidSource
	seqno uint64
}

type gtidModel map[gtidModelEntry]bool

func small(s Set) bool { return s.Count() <= modelLimit }

func toModel(s Set) gtidModel {
	m := gtidModel{}
	for src, ivs := range s.ranges {
		for _, iv := range ivs {
			for n := iv.start; n <= iv.end; n++ {
				m[gtidModelEntry{src, n}] = true
			}
		}
	}
	return m
}

func (m gtidModel) equal(o gtidModel) bool {
	if len(m) != len(o) {
		return false
	}
	for g := range m {
		if !o[g] {
			return false
		}
	}
	return true
}

func addUint128(a, b uint128) uint128 {
	s := a.add(b.lo)
	s.hi += b.hi
	return s
}

// mustGTID unwraps the result of a set operation that must not fail.
func mustGTID(t *testing.T) func(Set, error) Set {
	return func(s Set, err error) Set {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}
