package authz

import (
	"fmt"
	"math"
	"reflect"
	"strconv"

	"github.com/expr-lang/expr/ast"
)

// The static cost bound. Compile walks the type-checked tree of an expression and estimates, for
// every node, an upper bound of the time it takes to evaluate and of the length of what it
// builds, for the largest input a token can carry: MaxGroups groups of up to maxGroupLen bytes
// (and no more than maxGroupBytes in all). Estimates are in nanoseconds on the reference machine
// (2 cores), deliberately pessimistic: every instruction, loop iteration, element compared and
// byte scanned or copied is counted. An expression is refused when
//   - its estimate is over maxCost (a loop inside a loop over groups, a loop over a large
//     list, ...),
//   - one uninterruptible operation (a builtin or operator that runs natively, without the
//     deadline's checkpoints) is over maxStep,
//   - it builds a string over maxString bytes, a list over maxList elements or a value over
//     maxBytes,
//   - it uses a construct whose cost has no bound: repeat(), a range whose bounds are not
//     constants or that has more than maxRange elements, a reduce() whose accumulator is built
//     from itself (it can double every step), matches with a pattern that is not a constant,
//     loops nested more than maxLoopDepth deep, builtins the bound does not model,
//   - it has more than MaxNodes nodes (expr's own limit, see Compile).
const (
	// MaxGroups is the number of groups the bound assumes a token carries at most.
	MaxGroups = 10000
	// maxGroupLen and maxGroupBytes bound the length of one group and of all of them (the
	// registry reads at most 1 MiB of request headers).
	maxGroupLen   = 1024
	maxGroupBytes = 1 << 20

	// MaxNodes is the most AST nodes (names, literals, operators, calls) an expression may have.
	MaxNodes = 1024
	// maxLoopDepth is how deep closures (all, any, filter, map, ...) may nest.
	maxLoopDepth = 3
	// maxCost is the most an expression may cost at the largest input (estimated ns).
	maxCost = 50e6
	// maxStep is the most one operation the deadline cannot interrupt may cost (estimated ns).
	maxStep = 2e6
	// maxString, maxList and maxRange bound what an expression builds.
	maxString = 2 << 20
	maxList   = 100000
	maxRange  = 10000
	maxBytes  = 32 << 20 // what one value (a list and its elements) occupies

	// heavyStep is the estimated cost from which a single operation gets a deadline checkpoint
	// of its own in the instrumented program; loops get one in their closure when they cost
	// more than loopStep in all (a cheaper loop is counted whole by the enclosing checkpoint).
	heavyStep = 2000
	loopStep  = 10000
)

// Unit costs (estimated ns).
const (
	opNs    = 10 // one instruction
	iterNs  = 50 // one loop iteration (jumps, index, boxing the element)
	elemNs  = 10 // one element compared or copied by a native operation
	inNs    = 50 // one element compared by "in" (boxed and compared by reflection)
	byteNs  = 1  // one byte scanned, converted or copied
	allocNs = 30 // one allocation
)

// params are the input sizes a cost is estimated for.
type params struct {
	groups   float64 // number of groups
	groupLen float64 // bytes of one group
	total    float64 // bytes of all groups
}

var (
	// maxInput is the largest input a token can carry: the bound.
	maxInput = params{groups: MaxGroups, groupLen: maxGroupLen, total: maxGroupBytes}
	// smallInput is a typical token: the estimate for it gives tighter estimates for callers
	// whose groups fit it (see meta.fast).
	smallInput = params{groups: smallGroups, groupLen: smallGroupLen, total: smallGroups * smallGroupLen}
)

const (
	smallGroups   = 64
	smallGroupLen = 256
)

// CostError is an expression over the cost bound: which part, where, and why.
type CostError struct {
	// Part is the offending operator, builtin or construct, e.g. "repeat()" or "range 1..100000000".
	Part string
	// Line and Column are the position of Part (1-based; 0 when the whole expression is meant).
	Line, Column int
	// Reason says why it is refused.
	Reason string
}

func (e *CostError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("is over the cost bound: %s %s", e.Part, e.Reason)
	}
	return fmt.Sprintf("is over the cost bound: %s at %d:%d %s", e.Part, e.Line, e.Column, e.Reason)
}

// bound is what the analysis knows about one node's value and cost.
type bound struct {
	cost  float64 // estimated ns to evaluate the node once
	n     float64 // length: bytes of a string, elements of a list, entries of a map; 0 for scalars
	elem  float64 // lists and maps: the longest element (string bytes or list elements)
	total float64 // lists and maps: the sum of the elements' lengths
	isInt bool    // ival is the node's value, a constant integer
	ival  int64
	isStr bool         // the node is a constant string
	kind  reflect.Kind // the node's type (reflect.Interface when not known)
	loops int          // loops in the node and its children
}

// size is the bytes a value occupies, roughly.
func (b bound) size() float64 {
	switch b.kind {
	case reflect.String:
		return b.n
	case reflect.Slice, reflect.Array, reflect.Map, reflect.Interface:
		return b.n + 16*b.n + b.total
	}
	return 8
}

type loopFrame struct {
	item, acc bound
}

type letVar struct {
	name string
	b    bound
}

// analyzer computes bounds bottom-up; the first refusal wins.
type analyzer struct {
	src     []rune
	in      params
	enforce bool // refuse what is over the bound (false: only estimate)
	loops   []loopFrame
	lets    []letVar
	err     *CostError
	// weights are the checkpoint weights of the instrumented program: the cost of a closure's
	// body for PredicateNodes, the node's own cost for heavy nodes.
	weights map[ast.Node]int
}

// analyze returns the bound of the expression's tree for the input sizes in.
func analyze(node ast.Node, source string, in params, enforce bool) (bound, map[ast.Node]int, *CostError) {
	a := &analyzer{src: []rune(source), in: in, enforce: enforce, weights: map[ast.Node]int{}}
	b := a.visit(node)
	if a.err == nil && enforce && b.cost > maxCost {
		a.refuse(node, "the expression", fmt.Sprintf("costs about %s at %d groups, more than the %s allowed", ns(b.cost), MaxGroups, ns(maxCost)))
	}
	return b, a.weights, a.err
}

func (a *analyzer) position(node ast.Node) (int, int) {
	from := node.Location().From
	line, col := 1, 1
	for i, r := range a.src {
		if i >= from {
			break
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

func (a *analyzer) refuse(node ast.Node, part, reason string) {
	if a.err != nil || !a.enforce {
		return
	}
	e := &CostError{Part: part, Reason: reason}
	if node != nil {
		e.Line, e.Column = a.position(node)
	}
	a.err = e
}

// short is a node's source form, shortened for messages.
func short(n ast.Node) string {
	s := []rune(n.String())
	if len(s) > 40 {
		return string(s[:37]) + "..."
	}
	return string(s)
}

// ns formats an estimated duration.
func ns(v float64) string {
	switch {
	case math.IsInf(v, 0) || v > 1e15:
		return "an unbounded time"
	case v >= 1e9:
		return fmt.Sprintf("%.3g s", ceil3(v/1e9))
	case v >= 1e6:
		return fmt.Sprintf("%.3g ms", ceil3(v/1e6))
	case v >= 1e3:
		return fmt.Sprintf("%.3g µs", ceil3(v/1e3))
	}
	return fmt.Sprintf("%.0f ns", math.Ceil(v))
}

// ceil3 rounds v > 0 up to three significant digits (an estimate over a limit never reads as
// the limit).
func ceil3(v float64) float64 {
	unit := math.Pow(10, math.Floor(math.Log10(v))-2)
	return math.Ceil(v/unit-1e-9) * unit
}

func count(v float64) string {
	if math.IsInf(v, 0) || v > 1e15 {
		return "unboundedly many"
	}
	return strconv.FormatFloat(math.Ceil(v), 'f', 0, 64)
}

// step charges a node's own cost on top of its children's and checks the limits.
func (a *analyzer) step(node ast.Node, part string, b bound, own float64) bound {
	b.cost += own
	if own >= heavyStep {
		a.weights[node] = weight(own)
	}
	if !a.enforce || a.err != nil {
		return b
	}
	b.kind = kindOf(node)
	switch {
	case (b.kind == reflect.String || b.kind == reflect.Interface) && b.n > maxString:
		a.refuse(node, part, fmt.Sprintf("builds a string of up to %s bytes, more than the %d allowed", count(b.n), maxString))
	case isList(node) && b.n > maxList:
		a.refuse(node, part, fmt.Sprintf("builds a list of up to %s elements, more than the %d allowed", count(b.n), maxList))
	case b.size() > maxBytes:
		a.refuse(node, part, fmt.Sprintf("builds about %s bytes, more than the %d allowed", count(b.size()), maxBytes))
	case own > maxStep:
		a.refuse(node, part, fmt.Sprintf("does about %s of work in one step at %d groups, which the evaluation deadline cannot interrupt; at most %s is allowed",
			ns(own), MaxGroups, ns(maxStep)))
	case b.cost > maxCost:
		a.refuse(node, part, fmt.Sprintf("brings the expression's cost to about %s at %d groups, more than the %s allowed; split it into several GroupBindings",
			ns(b.cost), MaxGroups, ns(maxCost)))
	}
	return b
}

func weight(v float64) int {
	if v > 1e9 {
		return 1e9
	}
	if v < 1 {
		return 1
	}
	return int(v)
}

func kindOf(node ast.Node) reflect.Kind {
	t := node.Type()
	if t == nil {
		return reflect.Interface
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind()
}

func isString(node ast.Node) bool { return kindOf(node) == reflect.String }

func isList(node ast.Node) bool {
	k := kindOf(node)
	return k == reflect.Slice || k == reflect.Array
}

// isScalar: a number, boolean, time or duration (nothing that can grow).
func isScalar(node ast.Node) bool {
	switch kindOf(node) {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return true
	case reflect.Struct: // time.Time
		return true
	}
	return false
}

func sum(bs ...bound) bound {
	var out bound
	for _, b := range bs {
		out.cost += b.cost
		out.loops += b.loops
	}
	return out
}

func maxf(vs ...float64) float64 {
	m := 0.0
	for _, v := range vs {
		if v > m {
			m = v
		}
	}
	return m
}

func (a *analyzer) visit(node ast.Node) bound {
	if a.err != nil || node == nil {
		return bound{}
	}
	b := a.visitNode(node)
	b.kind = kindOf(node)
	if b.kind == reflect.String {
		b.elem, b.total = 0, 0
	}
	return b
}

func (a *analyzer) visitNode(node ast.Node) bound {
	switch n := node.(type) {
	case *ast.NilNode, *ast.BoolNode, *ast.FloatNode, *ast.ConstantNode:
		return bound{cost: opNs}
	case *ast.IntegerNode:
		return bound{cost: opNs, isInt: true, ival: int64(n.Value)}
	case *ast.StringNode:
		return bound{cost: opNs, n: float64(len(n.Value)), isStr: true}
	case *ast.BytesNode:
		return bound{cost: opNs, n: float64(len(n.Value))}
	case *ast.IdentifierNode:
		return a.identifier(n)
	case *ast.PointerNode:
		return a.pointer(n)
	case *ast.UnaryNode:
		b := a.visit(n.Node)
		out := bound{cost: b.cost, loops: b.loops}
		if n.Operator == "-" && b.isInt {
			out.isInt, out.ival = true, -b.ival
		} else if n.Operator == "+" && b.isInt {
			out.isInt, out.ival = true, b.ival
		}
		return a.step(n, fmt.Sprintf("operator %q", n.Operator), out, opNs)
	case *ast.BinaryNode:
		return a.binary(n)
	case *ast.ChainNode:
		return a.visit(n.Node)
	case *ast.MemberNode:
		if id, ok := n.Node.(*ast.IdentifierNode); ok && id.Value == "$env" {
			a.refuse(n, "$env", "is not supported in GroupBinding expressions; write groups")
			return bound{}
		}
		c, p := a.visit(n.Node), a.visit(n.Property)
		out := sum(c, p)
		out.n, out.elem, out.total = c.elem, c.elem, c.elem*c.elem
		if kindOf(n) == reflect.String {
			out.elem, out.total = 0, 0
		}
		return a.step(n, "index", out, opNs)
	case *ast.SliceNode:
		c, from, to := a.visit(n.Node), a.visit(n.From), a.visit(n.To)
		out := sum(c, from, to)
		out.n, out.elem, out.total = c.n, c.elem, c.total
		return a.step(n, "slice", out, opNs+allocNs)
	case *ast.ConditionalNode:
		c, e1, e2 := a.visit(n.Cond), a.visit(n.Exp1), a.visit(n.Exp2)
		out := bound{cost: c.cost + maxf(e1.cost, e2.cost), n: maxf(e1.n, e2.n), elem: maxf(e1.elem, e2.elem),
			total: maxf(e1.total, e2.total), loops: c.loops + e1.loops + e2.loops}
		return a.step(n, "conditional", out, opNs)
	case *ast.ArrayNode:
		out := bound{}
		for _, e := range n.Nodes {
			b := a.visit(e)
			out.cost += b.cost
			out.loops += b.loops
			out.elem = maxf(out.elem, b.n)
			out.total += b.n
		}
		out.n = float64(len(n.Nodes))
		return a.step(n, "list", out, opNs+allocNs+elemNs*out.n)
	case *ast.MapNode:
		out := bound{}
		for _, p := range n.Pairs {
			pair, ok := p.(*ast.PairNode)
			if !ok {
				a.refuse(p, "map entry", "is not supported")
				return bound{}
			}
			k, v := a.visit(pair.Key), a.visit(pair.Value)
			out.cost += k.cost + v.cost
			out.loops += k.loops + v.loops
			out.elem = maxf(out.elem, v.n)
			out.total += v.n
		}
		out.n = float64(len(n.Pairs))
		return a.step(n, "map", out, opNs+allocNs+4*elemNs*out.n)
	case *ast.VariableDeclaratorNode:
		v := a.visit(n.Value)
		a.lets = append(a.lets, letVar{name: n.Name, b: v})
		e := a.visit(n.Expr)
		a.lets = a.lets[:len(a.lets)-1]
		out := e
		out.cost += v.cost
		out.loops += v.loops
		out.isInt, out.isStr = false, false
		return out
	case *ast.SequenceNode:
		var out bound
		for _, e := range n.Nodes {
			b := a.visit(e)
			cost, loops := out.cost, out.loops
			out = b
			out.cost += cost
			out.loops += loops
		}
		return out
	case *ast.BuiltinNode:
		return a.builtin(n)
	case *ast.CallNode:
		a.refuse(n, "function call", "is not supported in GroupBinding expressions (only expr's builtins are)")
		return bound{}
	case *ast.PredicateNode:
		return a.visit(n.Node)
	default:
		a.refuse(node, fmt.Sprintf("%T", node), "is not supported by the cost bound")
		return bound{}
	}
}

func (a *analyzer) identifier(n *ast.IdentifierNode) bound {
	for i := len(a.lets) - 1; i >= 0; i-- {
		if a.lets[i].name == n.Value {
			b := a.lets[i].b
			b.cost, b.loops = opNs, 0
			return b
		}
	}
	switch n.Value {
	case "groups":
		return bound{cost: opNs + allocNs, n: a.in.groups, elem: a.in.groupLen, total: math.Min(a.in.total, a.in.groups*a.in.groupLen)}
	case "$env":
		a.refuse(n, "$env", "is not supported in GroupBinding expressions; write groups")
		return bound{}
	}
	a.refuse(n, n.Value, "is not a name GroupBinding expressions know (only groups)")
	return bound{}
}

func (a *analyzer) pointer(n *ast.PointerNode) bound {
	if len(a.loops) == 0 {
		a.refuse(n, "#"+n.Name, "is used outside of a closure")
		return bound{}
	}
	f := a.loops[len(a.loops)-1]
	switch n.Name {
	case "":
		b := f.item
		b.cost = opNs
		return b
	case "acc":
		b := f.acc
		b.cost = opNs
		return b
	case "index":
		return bound{cost: opNs}
	}
	a.refuse(n, "#"+n.Name, "is not supported")
	return bound{}
}

func (a *analyzer) binary(n *ast.BinaryNode) bound {
	l, r := a.visit(n.Left), a.visit(n.Right)
	if a.err != nil {
		return bound{}
	}
	out := sum(l, r)
	part := fmt.Sprintf("operator %q", n.Operator)
	switch n.Operator {
	case "..":
		if !l.isInt || !r.isInt {
			a.refuse(n, "range "+short(n), fmt.Sprintf("has bounds that are not constant integers, so it can have any number of elements; write constants with at most %d elements, e.g. 1..10", maxRange))
			return bound{}
		}
		size := float64(r.ival) - float64(l.ival) + 1
		part = fmt.Sprintf("range %d..%d", l.ival, r.ival)
		if size < 0 {
			size = 0
		}
		if size > maxRange {
			a.refuse(n, part, fmt.Sprintf("has %s elements, more than the %d allowed", count(size), maxRange))
			return bound{}
		}
		out.n = size
		return a.step(n, part, out, opNs+allocNs+elemNs*size)
	case "in", "not in":
		return a.step(n, part, out, opNs+inNs*r.n+byteNs*l.n)
	case "contains", "not contains":
		return a.step(n, part, out, opNs+byteNs*(l.n+r.n))
	case "startsWith", "endsWith", "not startsWith", "not endsWith":
		return a.step(n, part, out, opNs+byteNs*math.Min(l.n, r.n))
	case "matches", "not matches":
		if !r.isStr {
			a.refuse(n, part, "has a pattern that is not a constant string: it would compile a regular expression on every evaluation; write the pattern as a literal")
			return bound{}
		}
		return a.step(n, part, out, opNs+10*byteNs*l.n)
	case "==", "!=", "<", ">", "<=", ">=":
		return a.step(n, part, out, opNs+byteNs*math.Min(l.size(), r.size()))
	case "+":
		if isString(n) || (!isScalar(n.Left) && !isScalar(n.Right)) {
			// A string (or, for untyped operands, possibly a string) concatenation.
			out.n = l.n + r.n
			out.elem = maxf(l.elem, r.elem)
			out.total = l.total + r.total
			return a.step(n, `string concatenation "+"`, out, opNs+allocNs+byteNs*out.n)
		}
		return a.step(n, part, out, opNs)
	case "??":
		out.n, out.elem, out.total = maxf(l.n, r.n), maxf(l.elem, r.elem), maxf(l.total, r.total)
		return a.step(n, part, out, opNs)
	}
	return a.step(n, part, out, opNs)
}

// loopBuiltins take a collection and a closure.
var loopBuiltins = map[string]bool{
	"all": true, "none": true, "any": true, "one": true, "filter": true, "map": true, "count": true,
	"sum": true, "find": true, "findIndex": true, "findLast": true, "findLastIndex": true,
	"groupBy": true, "sortBy": true, "reduce": true,
}

func (a *analyzer) builtin(n *ast.BuiltinNode) bound {
	part := n.Name + "()"
	if loopBuiltins[n.Name] {
		if len(n.Arguments) > 1 {
			if _, ok := n.Arguments[1].(*ast.PredicateNode); ok {
				return a.loop(n, part)
			}
		}
	}
	switch n.Name {
	case "repeat":
		a.refuse(n, part, "builds a string of any length (its count can be anything); it is not allowed in GroupBinding expressions")
		return bound{}
	case "fromJSON", "toJSON", "flatten", "timezone", "toPairs", "fromPairs":
		a.refuse(n, part, "is not supported in GroupBinding expressions (its cost depends on structure the cost bound does not model)")
		return bound{}
	}
	args := make([]bound, len(n.Arguments))
	for i, arg := range n.Arguments {
		args[i] = a.visit(arg)
	}
	if a.err != nil {
		return bound{}
	}
	out := sum(args...)
	arg := func(i int) bound {
		if i < len(args) {
			return args[i]
		}
		return bound{}
	}
	a0 := arg(0)
	switch n.Name {
	case "len", "type", "abs", "ceil", "floor", "round", "float", "now", "bitand", "bitor", "bitxor",
		"bitnand", "bitnot", "bitshl", "bitshr", "bitushr":
		return a.step(n, part, out, opNs)
	case "int", "duration":
		return a.step(n, part, out, opNs+byteNs*a0.n)
	case "date":
		if len(args) > 2 {
			a.refuse(n, part, "with a time zone argument loads time zone data on every evaluation; use date(value) or date(value, layout) with an offset")
			return bound{}
		}
		return a.step(n, part, out, opNs+10*byteNs*(a0.n+arg(1).n))
	case "string":
		out.n = 2*a0.size() + 32 // fmt's form: separators, brackets, numbers
		return a.step(n, part, out, opNs+allocNs+byteNs*out.n)
	case "trim", "trimPrefix", "trimSuffix":
		out.n = a0.n
		return a.step(n, part, out, opNs+byteNs*(a0.n+arg(1).n))
	case "upper", "lower":
		out.n = math.Ceil(a0.n * 3 / 2) // some runes change length when their case changes
		return a.step(n, part, out, opNs+allocNs+2*byteNs*out.n)
	case "split", "splitAfter":
		out.n, out.elem, out.total = a0.n+1, a0.n, a0.n
		return a.step(n, part, out, opNs+allocNs+byteNs*a0.n+elemNs*out.n)
	case "replace":
		s, old, repl := a0, arg(1), arg(2)
		per := 1.0 // an empty old string inserts repl between every byte
		if old.isStr && old.n > 0 {
			per = old.n
		}
		out.n = s.n + (s.n/per+1)*repl.n
		return a.step(n, part, out, opNs+allocNs+byteNs*(s.n+out.n))
	case "join":
		out.n = a0.total + a0.n*arg(1).n
		return a.step(n, part, out, opNs+allocNs+elemNs*a0.n+byteNs*out.n)
	case "indexOf", "lastIndexOf":
		return a.step(n, part, out, opNs+byteNs*(a0.n+arg(1).n))
	case "hasPrefix", "hasSuffix":
		return a.step(n, part, out, opNs+byteNs*math.Min(a0.n, arg(1).n))
	case "max", "min", "mean":
		var elems float64
		for _, b := range args {
			elems += maxf(b.n, 1)
		}
		return a.step(n, part, out, opNs+elemNs*elems)
	case "median":
		return a.step(n, part, out, opNs+allocNs+elemNs*a0.n*math.Log2(a0.n+2))
	case "first", "last", "get":
		out.n, out.elem, out.total = a0.elem, a0.elem, a0.elem*a0.elem
		return a.step(n, part, out, opNs)
	case "take":
		out.n, out.elem, out.total = a0.n, a0.elem, a0.total
		return a.step(n, part, out, opNs+allocNs)
	case "keys", "values":
		out.n, out.elem, out.total = a0.n, a0.elem, a0.total
		return a.step(n, part, out, opNs+allocNs+(elemNs+allocNs)*a0.n)
	case "reverse":
		out.n, out.elem, out.total = a0.n, a0.elem, a0.total
		return a.step(n, part, out, opNs+allocNs+elemNs*a0.n)
	case "uniq":
		out.n, out.elem, out.total = a0.n, a0.elem, a0.total
		return a.step(n, part, out, opNs+allocNs+elemNs*a0.n*a0.n)
	case "sort":
		out.n, out.elem, out.total = a0.n, a0.elem, a0.total
		return a.step(n, part, out, opNs+allocNs+4*elemNs*a0.n*math.Log2(a0.n+2))
	case "concat":
		for _, b := range args {
			out.n += b.n
			out.elem = maxf(out.elem, b.elem)
			out.total += b.total
		}
		return a.step(n, part, out, opNs+allocNs+elemNs*out.n)
	case "toBase64":
		out.n = math.Ceil(a0.n*4/3) + 4
		return a.step(n, part, out, opNs+allocNs+byteNs*out.n)
	case "fromBase64":
		out.n = a0.n
		return a.step(n, part, out, opNs+allocNs+byteNs*a0.n)
	case "count", "sum":
		// Without a closure: count(list) counts trues, sum(list) adds the elements.
		return a.step(n, part, out, opNs+elemNs*a0.n)
	}
	a.refuse(n, part, "is not supported in GroupBinding expressions (the cost bound does not model it)")
	return bound{}
}

// loop analyzes a builtin that runs a closure over a collection.
func (a *analyzer) loop(n *ast.BuiltinNode, part string) bound {
	if len(a.loops) >= maxLoopDepth {
		a.refuse(n, part, fmt.Sprintf("is a closure nested %d deep, more than the %d allowed", len(a.loops)+1, maxLoopDepth))
		return bound{}
	}
	c := a.visit(n.Arguments[0])
	if a.err != nil {
		return bound{}
	}
	pred := n.Arguments[1].(*ast.PredicateNode)
	item := bound{n: c.elem, elem: c.elem, total: c.elem * c.elem, kind: reflect.Interface}
	if t := n.Arguments[0].Type(); t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		item.kind = t.Elem().Kind()
		if item.kind == reflect.String {
			item.elem, item.total = 0, 0
		} else if item.kind != reflect.Slice && item.kind != reflect.Array && item.kind != reflect.Map && item.kind != reflect.Interface {
			item = bound{kind: item.kind}
		}
	}
	var extra bound // sortBy's order, reduce's initial value
	if len(n.Arguments) > 2 {
		extra = a.visit(n.Arguments[2])
	}
	acc := item
	if n.Name == "reduce" && len(n.Arguments) > 2 {
		acc = bound{n: maxf(extra.n, item.n), elem: maxf(extra.elem, item.elem), total: maxf(extra.total, item.total)}
	}
	body := a.body(pred, item, acc)
	if a.err != nil {
		return bound{}
	}
	if n.Name == "reduce" && !isScalar(pred.Node) {
		// The accumulator must not be built from itself: check that the body's size does not
		// grow with #acc's.
		big := acc
		big.n, big.elem, big.total = acc.n+1e6, acc.elem+1e6, acc.total+1e6
		enforce, weights := a.enforce, a.weights
		a.enforce, a.weights = false, map[ast.Node]int{}
		grown := a.body(pred, item, big)
		a.enforce, a.weights = enforce, weights
		if grown.n > body.n || grown.total > body.total || grown.elem > body.elem {
			a.refuse(n, part, "builds its accumulator from the previous one (#acc), so it can grow every step (e.g. double a string); accumulate a boolean or a number, or use any(), all(), count() or filter()")
			return bound{}
		}
		acc = bound{n: maxf(acc.n, body.n), elem: maxf(acc.elem, body.elem), total: maxf(acc.total, body.total)}
		body = a.body(pred, item, acc)
	}
	perIteration := iterNs + body.cost
	out := bound{cost: c.cost + extra.cost + opNs + allocNs, loops: c.loops + extra.loops + body.loops + 1}
	all := c.n * perIteration
	if item.n > 0 && c.total < c.n*item.n {
		// The elements' lengths add up to c.total, less than c.n of the longest: bound the
		// closure's cost by an affine function of its element's length and sum over c.total.
		base, perByte := a.affine(pred, item, acc, body.cost)
		all = math.Min(all, c.n*(iterNs+base)+perByte*c.total)
	}
	out.cost += all
	if all > loopStep {
		a.weights[pred] = weight(perIteration)
	}
	switch n.Name {
	case "filter":
		out.n, out.elem, out.total = c.n, c.elem, c.total
		out.cost += c.n * elemNs
	case "map":
		out.n, out.elem, out.total = c.n, maxf(body.n, body.elem), c.n*body.n
		out.cost += c.n * elemNs
	case "find", "findLast":
		out.n, out.elem, out.total = item.n, item.elem, item.total
	case "groupBy":
		out.n, out.elem, out.total = c.n, c.n, c.n
		out.cost += c.n * (4*elemNs + allocNs)
	case "sortBy":
		out.n, out.elem, out.total = c.n, c.elem, c.total
		out.cost += 4 * elemNs * c.n * math.Log2(c.n+2)
	case "reduce":
		out.n, out.elem, out.total = acc.n, acc.elem, acc.total
	}
	out.kind = kindOf(n)
	if !a.enforce || a.err != nil {
		return out
	}
	switch {
	case out.cost > maxCost:
		reason := fmt.Sprintf("runs its closure up to %s times", count(c.n))
		if body.loops > 0 {
			reason += fmt.Sprintf(" and the closure, which loops itself, costs up to %s", ns(perIteration))
		} else {
			reason += fmt.Sprintf(" at up to %s each", ns(perIteration))
		}
		reason += fmt.Sprintf(": about %s at %d groups, more than the %s allowed", ns(out.cost), MaxGroups, ns(maxCost))
		if body.loops > 0 {
			reason += "; a loop inside a loop over a large list is too costly"
		}
		a.refuse(n, part, reason)
	case isList(n) && out.n > maxList:
		a.refuse(n, part, fmt.Sprintf("builds a list of up to %s elements, more than the %d allowed", count(out.n), maxList))
	case out.size() > maxBytes:
		a.refuse(n, part, fmt.Sprintf("builds about %s bytes, more than the %d allowed", count(out.size()), maxBytes))
	}
	return out
}

// affine returns base and perByte such that the closure's cost for an element of length x is at
// most base + perByte*x for 0 <= x <= item.n (fM is the cost for item.n): the chord between
// x = 0 and item.n (which bounds the convex parts of the estimate), raised to cover sampled
// lengths (for its concave parts, such as startsWith's min(x, len(prefix))).
func (a *analyzer) affine(pred *ast.PredicateNode, item, acc bound, fM float64) (float64, float64) {
	enforce, weights := a.enforce, a.weights
	a.enforce, a.weights = false, map[ast.Node]int{}
	defer func() { a.enforce, a.weights = enforce, weights }()
	at := func(x float64) float64 {
		it := item
		scale := x / item.n
		it.n, it.elem, it.total = x, item.elem*scale, item.total*scale
		return a.body(pred, it, acc).cost
	}
	f0 := at(0)
	perByte := math.Max(0, (fM-f0)/item.n)
	base := f0
	for _, x := range []float64{1, 16, 256} {
		if x < item.n {
			base = math.Max(base, at(x)-perByte*x)
		}
	}
	return base, perByte
}

// body analyzes a closure's body with the given element and accumulator.
func (a *analyzer) body(pred *ast.PredicateNode, item, acc bound) bound {
	a.loops = append(a.loops, loopFrame{item: item, acc: acc})
	b := a.visit(pred.Node)
	a.loops = a.loops[:len(a.loops)-1]
	return b
}
