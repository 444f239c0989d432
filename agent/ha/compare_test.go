package ha

import (
	_ "embed"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-db/shoal/consensus/membership"
	"github.com/shoal-db/shoal/consensus/record"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// The helpers here compare and copy Decisions and Observations by walking their types, so a
// field added later is compared and copied too, without anyone remembering to list it.

var (
	setType  = reflect.TypeFor[gtid.Set]()
	timeType = reflect.TypeFor[time.Time]()
)

// diff lists where got and want differ, one "path: got X, want Y" per leaf. gtid.Set and
// time.Time compare by value (Equal), not by their hidden representation; a nil slice equals an
// empty one, as nothing that reads a Decision tells them apart.
func diff(path string, got, want reflect.Value) []string {
	// Built only when needed: printing whole observations at every level would be slow.
	differ := func() []string { return []string{fmt.Sprintf("%s: got %s, want %s", path, show(got), show(want))} }
	if !got.IsValid() || !want.IsValid() { // a map key on one side only
		return differ()
	}
	switch got.Type() {
	case setType:
		eq, err := got.Interface().(gtid.Set).Equal(want.Interface().(gtid.Set))
		if err != nil || !eq {
			return differ()
		}
		return nil
	case timeType:
		if !got.Interface().(time.Time).Equal(want.Interface().(time.Time)) {
			return differ()
		}
		return nil
	}
	switch got.Kind() {
	case reflect.Pointer:
		if got.IsNil() || want.IsNil() {
			if got.IsNil() != want.IsNil() {
				return differ()
			}
			return nil
		}
		return diff(path, got.Elem(), want.Elem())
	case reflect.Struct:
		if !allExported(got.Type()) {
			// Hidden state: only the whole value can be compared.
			if !reflect.DeepEqual(got.Interface(), want.Interface()) {
				return differ()
			}
			return nil
		}
		var out []string
		for i := range got.NumField() {
			out = append(out, diff(path+"."+got.Type().Field(i).Name, got.Field(i), want.Field(i))...)
		}
		return out
	case reflect.Slice, reflect.Array:
		if got.Len() != want.Len() {
			return differ()
		}
		var out []string
		for i := range got.Len() {
			out = append(out, diff(fmt.Sprintf("%s[%d]", path, i), got.Index(i), want.Index(i))...)
		}
		return out
	case reflect.Map:
		keys := map[string]reflect.Value{}
		for _, k := range append(got.MapKeys(), want.MapKeys()...) {
			keys[fmt.Sprint(k.Interface())] = k
		}
		var out []string
		for _, name := range slices.Sorted(maps.Keys(keys)) {
			out = append(out, diff(path+"["+name+"]", got.MapIndex(keys[name]), want.MapIndex(keys[name]))...)
		}
		return out
	}
	if !reflect.DeepEqual(got.Interface(), want.Interface()) {
		return differ()
	}
	return nil
}

// exported caches allExported by type: the property test walks 20,000 observations.
var exported sync.Map

func allExported(t reflect.Type) bool {
	if v, ok := exported.Load(t); ok {
		return v.(bool)
	}
	all := true
	for i := range t.NumField() {
		all = all && t.Field(i).IsExported()
	}
	exported.Store(t, all)
	return all
}

// show prints a value for a diff line: sets as their text, strings quoted, pointers through.
func show(v reflect.Value) string {
	switch {
	case !v.IsValid():
		return "<missing>"
	case v.Type() == setType:
		return strconv.Quote(v.Interface().(gtid.Set).String())
	case v.Type() == timeType:
		return v.Interface().(time.Time).Format(time.RFC3339Nano)
	case v.Kind() == reflect.Pointer && v.IsNil():
		return "nil"
	case v.Kind() == reflect.Pointer:
		return "&" + show(v.Elem())
	case v.Kind() == reflect.String:
		return strconv.Quote(v.String())
	}
	return fmt.Sprintf("%+v", v.Interface())
}

// deepCopy returns a copy of v that shares nothing with it: maps, slices and pointers are
// rebuilt, and gtid sets, whose maps are hidden, are parsed again from their text. A type it
// cannot copy faithfully (hidden fields, interfaces, funcs) panics rather than share.
func deepCopy[T any](v T) T {
	return deepValue(reflect.ValueOf(v)).Interface().(T)
}

func deepValue(v reflect.Value) reflect.Value {
	t := v.Type()
	switch t {
	case setType:
		s := v.Interface().(gtid.Set)
		if s.Flavor() == "" {
			return v // the zero set: no map to share
		}
		return reflect.ValueOf(gtid.MustParse(s.Flavor(), s.String()))
	case timeType:
		return v // a value; its Location is never modified
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return reflect.Zero(t)
		}
		n := reflect.New(t.Elem())
		n.Elem().Set(deepValue(v.Elem()))
		return n
	case reflect.Struct:
		if !allExported(t) {
			panic("deepCopy: " + t.String() + " has hidden fields")
		}
		n := reflect.New(t).Elem()
		for i := range t.NumField() {
			n.Field(i).Set(deepValue(v.Field(i)))
		}
		return n
	case reflect.Slice:
		if v.IsNil() {
			return reflect.Zero(t)
		}
		n := reflect.MakeSlice(t, v.Len(), v.Len())
		for i := range v.Len() {
			n.Index(i).Set(deepValue(v.Index(i)))
		}
		return n
	case reflect.Array:
		n := reflect.New(t).Elem()
		for i := range v.Len() {
			n.Index(i).Set(deepValue(v.Index(i)))
		}
		return n
	case reflect.Map:
		if v.IsNil() {
			return reflect.Zero(t)
		}
		n := reflect.MakeMapWithSize(t, v.Len())
		for it := v.MapRange(); it.Next(); {
			n.SetMapIndex(deepValue(it.Key()), deepValue(it.Value()))
		}
		return n
	case reflect.Interface, reflect.Chan, reflect.Func, reflect.UnsafePointer:
		panic("deepCopy: cannot copy " + t.String())
	}
	return v
}

// decideGuarded is Decide, failing t when Decide changed anything reachable from obs (its maps,
// pointers and slices are shared with the caller's).
func decideGuarded(t testing.TB, obs Observation, p Policy) Decision {
	t.Helper()
	before := deepCopy(obs)
	d := Decide(obs, p)
	for _, line := range changed(before, obs) {
		t.Errorf("Decide changed its input: %s", line)
	}
	return d
}

// changed lists how after differs from before. The copy's sets are parsed back into the same
// representation, so DeepEqual is a fast exact check; diff says where, and ignores differences of
// representation only.
func changed(before, after Observation) []string {
	if reflect.DeepEqual(before, after) {
		return nil
	}
	return diff("obs", reflect.ValueOf(after), reflect.ValueOf(before))
}

// checkDecision fails t with one line per field in which got differs from want.
func checkDecision(t testing.TB, got, want Decision) {
	t.Helper()
	lines := diff("d", reflect.ValueOf(got), reflect.ValueOf(want))
	for _, line := range lines {
		t.Error(line)
	}
	if len(lines) > 0 {
		t.Logf("whole decision: %s", got.Reason())
	}
}

// The copier must really share nothing, or the input guard compares the input with itself.
func TestDeepCopySharesNothing(t *testing.T) {
	build := func() Observation {
		o := cluster()
		o.Record.Switchover = &record.Switchover{To: "db-2"}
		lag := time.Second
		o.Local.Status.Replica.Lag = &lag
		o.Raft.Seen = []membership.Candidate{{ID: "db-0", Addr: "10.0.0.1:7000", Alive: true}}
		o.Raft.Configuration = []membership.Server{{ID: "db-0", Addr: "10.0.0.1:7000", Voter: true}}
		return o
	}
	o, fresh := build(), build()
	c := deepCopy(o)
	if lines := diff("obs", reflect.ValueOf(c), reflect.ValueOf(o)); len(lines) > 0 {
		t.Fatalf("the copy differs from the original: %v", lines)
	}
	// Sets are immutable by API, but the copy must not even share their hidden maps.
	ranges := func(s gtid.Set) uintptr {
		f := reflect.ValueOf(s).FieldByName("ranges")
		if f.Kind() != reflect.Map {
			t.Fatal("gtid.Set has no map named ranges any more: update this check")
		}
		return f.Pointer()
	}
	if ranges(c.Local.Status.Executed) == ranges(o.Local.Status.Executed) {
		t.Error("the copy shares a gtid set's map")
	}

	c.Peers["db-0"] = Peer{State: PeerDead}
	delete(c.Servers, "db-1")
	c.Record.Members["db-9"] = record.Member{ID: "db-9"}
	c.Primary.Up = false
	c.Record.Switchover.To = "db-1"
	c.Local.Status.Replica.IOState = "No"
	*c.Local.Status.Replica.Lag = time.Hour
	c.Raft.Seen[0].Alive = false
	c.Raft.Configuration[0].Voter = false
	if lines := diff("obs", reflect.ValueOf(o), reflect.ValueOf(fresh)); len(lines) > 0 {
		t.Fatalf("changing the copy changed the original: %v", lines)
	}
	// And the diff sees every one of those changes.
	lines := diff("obs", reflect.ValueOf(c), reflect.ValueOf(o))
	for _, path := range []string{"obs.Peers[db-0].State", "obs.Servers[db-1]", "obs.Record.Members[db-9]", "obs.Primary.Up",
		"obs.Record.Switchover.To", "obs.Local.Status.Replica.IOState", "obs.Local.Status.Replica.Lag",
		"obs.Raft.Seen[0].Alive", "obs.Raft.Configuration[0].Voter"} {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, path+":") }) {
			t.Errorf("diff missed %s: %v", path, lines)
		}
	}

	// Sets compare by value, and nil slices equal empty ones.
	a := Decision{PrepareWaitFor: new(gtids(uuidA + ":4-5," + uuidA + ":1-3")), Quarantine: []string{}}
	b := Decision{PrepareWaitFor: new(gtids(uuidA + ":1-5"))}
	if lines := diff("d", reflect.ValueOf(a), reflect.ValueOf(b)); len(lines) > 0 {
		t.Errorf("equal decisions differ: %v", lines)
	}
	b.PrepareWaitFor = new(gtids(uuidA + ":1-6"))
	if lines := diff("d", reflect.ValueOf(a), reflect.ValueOf(b)); !slices.Equal(lines,
		[]string{`d.PrepareWaitFor: got "` + uuidA + `:1-5", want "` + uuidA + `:1-6"`}) {
		t.Errorf("diff of sets: %q", lines)
	}
}

// Every reason code in reason.go must be the expected outcome of some case of TestDecide, which
// compares codes exactly: a new code without a test fails here.
func TestEveryReasonCodeIsTested(t *testing.T) {
	declared := declaredCodes(t, reasonSource)
	if len(declared) < 30 {
		t.Fatalf("found only %d codes in reason.go", len(declared))
	}
	tested := map[Code]bool{}
	for _, c := range decideCases(DefaultPolicy()) {
		tested[c.want.NodeReason.Code] = true
		tested[c.want.ClusterReason.Code] = true
	}
	delete(tested, "")
	for code, name := range declared {
		if !tested[code] {
			t.Errorf("%s (%q) is the expected outcome of no TestDecide case", name, code)
		}
		delete(tested, code)
	}
	for code := range tested {
		t.Errorf("TestDecide expects code %q, which reason.go does not declare", code)
	}
}

// reasonSource is reason.go, embedded so the test reads no file at run time.
//
//go:embed reason.go
var reasonSource string

// codeDecl is one Code constant as reason.go declares it (gofmt'd): name, then value.
var codeDecl = regexp.MustCompile(`(?m)^\s*(Code\w+)\s+Code\s+=\s+"([^"]*)"`)

// declaredCodes reads the Code constants from reason.go, by value, with their names.
func declaredCodes(t *testing.T, source string) map[Code]string {
	codes := map[Code]string{}
	for _, m := range codeDecl.FindAllStringSubmatch(source, -1) {
		codes[Code(m[2])] = m[1]
	}
	if len(codes) < 10 {
		t.Fatalf("found only %d Code constants: is codeDecl still right?", len(codes))
	}
	return codes
}

// Reason is the line logs and status show: the leader's sentence first, when there is one.
func TestDecisionReason(t *testing.T) {
	d := Decision{NodeReason: replicaServing}
	if got := d.Reason(); got != replicaServing.Text {
		t.Errorf("node only: %q", got)
	}
	d.ClusterReason = db0Healthy
	if got, want := d.Reason(), db0Healthy.Text+"; "+replicaServing.Text; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
