package main

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/printer"
	"go/token"
	"go/types"
	"slices"
	"strings"
)

// mutation is one deletion from one file, with the whole file as it reads afterwards.
type mutation struct {
	file string
	line int
	desc string
	src  []byte
}

// edit replaces src[from:to] by text.
type edit struct {
	from, to int
	text     string
}

// enumerator walks one file and records its mutations.
type enumerator struct {
	fset *token.FileSet
	tf   *token.File
	name string
	src  []byte
	info *types.Info
	pkg  *types.Scope
	// params are never reported unused, so they need no keep-alive.
	params map[types.Object]bool
	// reads are where each object is read (a plain `x = ...` only writes it).
	reads map[types.Object][]token.Pos
	// final holds each function's last statement when it is a return: deleting it either does
	// not compile (a function with results) or changes nothing.
	final map[ast.Stmt]bool
	// branches are the if bodies and else blocks: deleting their only statement is the same
	// mutation as deleting the branch.
	branches map[*ast.BlockStmt]bool
	muts     []mutation
	err      error
}

// enumerate lists the mutations of one Go source file:
//   - the body of every switch case (default included) and of every if, and every else
//     branch: each is a decision branch;
//   - every single statement that changes state or control: assignments and increments (a
//     Decision field, the Memory, or a local the branches decide from), calls whose results
//     are dropped, and returns but a function's last. Declarations (`:=`, var) would only
//     break the build, nested ifs and switches are covered branch by branch, and a dropped
//     break or continue mostly changes nothing, so none of those is deleted on its own.
//
// A deletion that leaves a variable declared and never read would not compile, so the
// mutation keeps it read with a blank assignment: it tests the deleted logic, not the
// compiler.
func enumerate(name string, src []byte) ([]mutation, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	info := &types.Info{Defs: map[*ast.Ident]types.Object{}, Uses: map[*ast.Ident]types.Object{}}
	// Imports are left unresolved and the errors that follow ignored: only which identifier is
	// which local variable matters here, and go/types resolves that regardless.
	conf := types.Config{Error: func(error) {}}
	pkg, _ := conf.Check(f.Name.Name, fset, []*ast.File{f}, info)
	e := &enumerator{
		fset: fset, tf: fset.File(f.Pos()), name: name, src: src, info: info, pkg: pkg.Scope(),
		params: map[types.Object]bool{}, reads: map[types.Object][]token.Pos{},
		final: map[ast.Stmt]bool{}, branches: map[*ast.BlockStmt]bool{},
	}
	e.index(f)
	ast.Inspect(f, e.visit)
	if e.err != nil {
		return nil, e.err
	}
	// An else is recorded with its if but lies after the if's body.
	slices.SortStableFunc(e.muts, func(a, b mutation) int { return a.line - b.line })
	return e.muts, nil
}

// index finds the parameters and the reads of every variable.
func (e *enumerator) index(f *ast.File) {
	writeOnly := map[*ast.Ident]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncDecl:
			if n.Recv != nil {
				e.addParams(n.Recv)
			}
		case *ast.FuncType:
			e.addParams(n.Params)
			e.addParams(n.Results)
		case *ast.AssignStmt:
			if n.Tok == token.ASSIGN {
				for _, lhs := range n.Lhs {
					if id, ok := lhs.(*ast.Ident); ok {
						writeOnly[id] = true
					}
				}
			}
		}
		return true
	})
	for id, obj := range e.info.Uses {
		if !writeOnly[id] {
			e.reads[obj] = append(e.reads[obj], id.Pos())
		}
	}
}

func (e *enumerator) addParams(fields *ast.FieldList) {
	if fields == nil {
		return
	}
	for _, field := range fields.List {
		for _, id := range field.Names {
			e.params[e.info.Defs[id]] = true
		}
	}
}

func (e *enumerator) visit(n ast.Node) bool {
	switch n := n.(type) {
	case *ast.FuncDecl:
		if n.Body != nil {
			e.markFinal(n.Body)
		}
	case *ast.FuncLit:
		e.markFinal(n.Body)
	case *ast.CaseClause:
		if len(n.Body) > 0 {
			what := "delete default body"
			if n.List != nil {
				list := make([]string, len(n.List))
				for i, x := range n.List {
					list[i] = e.oneLine(x)
				}
				what = fmt.Sprintf("delete case body %q", cut(strings.Join(list, ", ")))
			}
			e.add(n.Pos(), what, n.Colon+1, n.Body[len(n.Body)-1].End(), e.replace)
		}
		if len(n.Body) > 1 {
			e.stmts(n.Body)
		}
	case *ast.IfStmt:
		e.ifStmt(n)
	case *ast.BlockStmt:
		if !e.branches[n] || len(n.List) > 1 {
			e.stmts(n.List)
		}
	}
	return e.err == nil
}

func (e *enumerator) markFinal(body *ast.BlockStmt) {
	if len(body.List) == 0 {
		return
	}
	if ret, ok := body.List[len(body.List)-1].(*ast.ReturnStmt); ok {
		e.final[ret] = true
	}
}

func (e *enumerator) ifStmt(n *ast.IfStmt) {
	cond := e.short(n.Cond)
	e.branches[n.Body] = true
	if n.Init != nil && deletable(n.Init) {
		// `if d.Errant = x; d.Errant != ""` assigns in its header: drop "init; ".
		e.add(n.Init.Pos(), "delete "+e.short(n.Init), n.Init.Pos(), n.Cond.Pos(), func(from, to int, keep string) []edit {
			if keep != "" {
				keep += "; "
			}
			return []edit{{from, to, keep}}
		})
	}
	if len(n.Body.List) > 0 {
		e.add(n.Pos(), fmt.Sprintf("delete if body %q", cond), n.Body.Lbrace+1, n.Body.Rbrace, e.replace)
	}
	if n.Else == nil {
		return
	}
	if block, ok := n.Else.(*ast.BlockStmt); ok {
		e.branches[block] = true
	}
	// The keep-alive goes into the if body, where everything the else could read is in scope.
	body := e.tf.Offset(n.Body.Lbrace + 1)
	e.add(n.Else.Pos(), fmt.Sprintf("delete else of %q", cond), n.Body.Rbrace+1, n.Else.End(), func(from, to int, keep string) []edit {
		if keep == "" {
			return []edit{{from, to, ""}}
		}
		return []edit{{body, body, "\n" + keep}, {from, to, ""}}
	})
}

// stmts adds the deletion of each single statement of a list.
func (e *enumerator) stmts(list []ast.Stmt) {
	for _, s := range list {
		if !deletable(s) || e.final[s] {
			continue
		}
		e.add(s.Pos(), "delete "+e.short(s), s.Pos(), s.End(), func(from, to int, keep string) []edit {
			if keep == "" {
				from, to = e.wholeLine(from, to)
			}
			return []edit{{from, to, keep}}
		})
	}
}

// deletable tells the statements deleted on their own: declarations would only break the build,
// and nested ifs and switches are covered branch by branch.
func deletable(s ast.Stmt) bool {
	switch s := s.(type) {
	case *ast.AssignStmt:
		return s.Tok != token.DEFINE
	case *ast.IncDecStmt, *ast.ExprStmt, *ast.ReturnStmt:
		return true
	}
	return false
}

// replace is the edit of most mutations: the deleted text gives way to the keep-alive.
func (e *enumerator) replace(from, to int, keep string) []edit {
	return []edit{{from, to, keep}}
}

// wholeLine widens [from, to) to the lines it fills, so no blank line is left behind.
func (e *enumerator) wholeLine(from, to int) (int, int) {
	start := from
	for start > 0 && (e.src[start-1] == ' ' || e.src[start-1] == '\t') {
		start--
	}
	end := to
	for end < len(e.src) && (e.src[end] == ' ' || e.src[end] == '\t') {
		end++
	}
	if (start == 0 || e.src[start-1] == '\n') && end < len(e.src) && e.src[end] == '\n' {
		return start, end + 1
	}
	return from, to
}

// add records the mutation that deletes [from, to), with edits built by mk from the byte
// offsets and the keep-alive statement (empty when none is needed).
func (e *enumerator) add(at token.Pos, desc string, from, to token.Pos, mk func(from, to int, keep string) []edit) {
	keep := e.keepAlive(from, to)
	if keep != "" {
		desc += " (with " + keep + ")"
	}
	edits := mk(e.tf.Offset(from), e.tf.Offset(to), keep)
	slices.SortFunc(edits, func(a, b edit) int { return b.from - a.from })
	src := slices.Clone(e.src)
	for _, ed := range edits {
		src = slices.Concat(src[:ed.from], []byte(ed.text), src[ed.to:])
	}
	line := e.fset.Position(at).Line
	out, err := format.Source(src)
	if err != nil {
		e.err = fmt.Errorf("%s:%d: %s: the mutated file does not parse: %w", e.name, line, desc, err)
		return
	}
	e.muts = append(e.muts, mutation{file: e.name, line: line, desc: desc, src: out})
}

// keepAlive is a blank assignment of the local variables read in [from, to) and nowhere else,
// or "" when there are none.
func (e *enumerator) keepAlive(from, to token.Pos) string {
	in := func(p token.Pos) bool { return p >= from && p < to }
	var names []string
	for id, obj := range e.info.Uses {
		if !in(id.Pos()) || in(obj.Pos()) || !e.local(obj) {
			continue
		}
		if !slices.ContainsFunc(e.reads[obj], func(p token.Pos) bool { return !in(p) }) {
			names = append(names, obj.Name())
		}
	}
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	names = slices.Compact(names)
	return strings.Repeat("_, ", len(names)-1) + "_ = " + strings.Join(names, ", ")
}

// local tells a variable the compiler requires to be read: declared in a function, not a
// parameter or a field.
func (e *enumerator) local(obj types.Object) bool {
	v, ok := obj.(*types.Var)
	return ok && !v.IsField() && v.Parent() != nil && v.Parent() != e.pkg && !e.params[obj]
}

// short is a node as source on one line, cut to fit a report line.
func (e *enumerator) short(n ast.Node) string {
	return cut(e.oneLine(n))
}

func (e *enumerator) oneLine(n ast.Node) string {
	var b bytes.Buffer
	// Writing to a bytes.Buffer does not fail.
	_ = printer.Fprint(&b, e.fset, n)
	return strings.Join(strings.Fields(b.String()), " ")
}

func cut(s string) string {
	if r := []rune(s); len(r) > 72 {
		return string(r[:71]) + "…"
	}
	return s
}
