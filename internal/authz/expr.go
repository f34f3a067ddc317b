// Package authz compiles and evaluates GroupBinding expressions.
//
// An expression's cost is bounded twice. At compile time (cost.go) the type-checked tree is
// refused when it could build unbounded strings or lists, nests loops over large lists, or is
// estimated to cost more than maxCost for the largest token (MaxGroups groups). At run time
// every evaluation has a deadline (DefaultDeadline): the compiled program carries checkpoints,
// calls of a function the VM makes at the start of every closure iteration and before every
// costly operation, that stop the VM itself (no goroutine is left running) once the deadline has
// passed; the VM's memory budget stops what builds too much. A program whose estimate for the
// caller's groups is a fraction of the deadline runs without checkpoints (see fast).
package authz

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
)

// Env is the environment expressions see: the caller's groups.
type Env struct {
	Groups []string `expr:"groups"`
}

// evalEnv is the environment programs run in: Env plus the checkpoint function. Expressions are
// type-checked against Env first, so they cannot name __checkpoint themselves.
type evalEnv struct {
	Groups     []string       `expr:"groups"`
	Checkpoint func(int) bool `expr:"__checkpoint"`
}

const checkpointName = "__checkpoint"

const (
	// DefaultDeadline is how long the GroupBinding expressions evaluated for one request may run.
	DefaultDeadline = 5 * time.Millisecond
	// checkEvery is the estimated work (ns) between two reads of the clock.
	checkEvery = 50000
	// fastCost is the estimated cost (ns) for the caller's groups under which a program runs
	// without checkpoints (see fast).
	fastCost = 1000000
	// memoryBudget is the VM's own budget (elements of ranges, lists, maps and sorted lists).
	memoryBudget = 1 << 20
)

// deadline is the deadline of Evaluations that set none (SetDeadline).
var deadline atomic.Int64

func init() { deadline.Store(int64(DefaultDeadline)) }

// SetDeadline sets the deadline of Evaluations that set none (d <= 0: DefaultDeadline) and
// returns the previous one. For a manager flag, and for tests that need a deadline independent of
// the machine's speed.
func SetDeadline(d time.Duration) time.Duration {
	if d <= 0 {
		d = DefaultDeadline
	}
	return time.Duration(deadline.Swap(int64(d)))
}

// Deadline returns the deadline of Evaluations that set none.
func Deadline() time.Duration { return time.Duration(deadline.Load()) }

// ErrEvaluationDeadline is returned (wrapped) when an evaluation ran past its deadline.
var ErrEvaluationDeadline = errors.New("evaluation ran past its deadline")

// meta is what Compile knows about a program; it travels as the program's last constant (the
// bytecode never refers to it) so that callers keep a plain *vm.Program.
type meta struct {
	plain     *vm.Program // the same expression without checkpoints
	zeroCost  float64     // estimated cost without groups
	smallCost float64     // estimated cost for smallInput
	maxCost   float64     // estimated cost for maxInput
}

func metaOf(p *vm.Program) *meta {
	if n := len(p.Constants); n > 0 {
		if m, ok := p.Constants[n-1].(*meta); ok {
			return m
		}
	}
	return nil
}

// Compile compiles a GroupBinding expression over `groups []string` and requires it to be a
// boolean within the cost bound. A compile error carries expr's position (line:column and a
// caret under the offending token); an expression over the bound returns a *CostError naming
// the part, its position and why.
func Compile(expression string) (*vm.Program, error) {
	cfg := newConfig(Env{})
	tree, err := checker.ParseCheck(expression, cfg)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) && strings.Contains(fe.Message, "exceeds maximum allowed nodes") {
			return nil, &CostError{Part: "the expression", Line: fe.Line, Column: fe.Column + 1,
				Reason: fmt.Sprintf("has more than %d nodes (names, literals, operators and calls); split it into several GroupBindings", MaxNodes)}
		}
		return nil, fmt.Errorf("does not compile to a boolean over groups: %w", err)
	}
	full, weights, cerr := analyze(tree.Node, expression, maxInput, true)
	if cerr != nil {
		return nil, cerr
	}
	small, _, _ := analyze(tree.Node, expression, smallInput, false)
	zero, _, _ := analyze(tree.Node, expression, params{}, false)

	plain, err := expr.Compile(expression, expr.Env(evalEnv{}), expr.AsBool(), expr.MaxNodes(MaxNodes))
	if err != nil {
		return nil, fmt.Errorf("does not compile to a boolean over groups: %w", err)
	}
	prog := plain
	if len(weights) > 0 {
		if prog, err = instrument(tree, weights); err != nil {
			return nil, fmt.Errorf("failed to add deadline checkpoints: %w", err)
		}
	} else {
		prog = copyProgram(plain)
	}
	prog.Constants = append(prog.Constants, &meta{plain: plain, zeroCost: zero.cost, smallCost: small.cost, maxCost: full.cost})
	return prog, nil
}

func newConfig(env any) *conf.Config {
	cfg := conf.CreateNew()
	for _, op := range []expr.Option{expr.Env(env), expr.AsBool(), expr.MaxNodes(MaxNodes)} {
		op(cfg)
	}
	cfg.Check()
	return cfg
}

// copyProgram returns p with its own Constants slice (the plain program must not carry meta).
func copyProgram(p *vm.Program) *vm.Program {
	c := *p
	c.Constants = append([]any(nil), p.Constants...)
	return &c
}

// instrument adds checkpoints to the checked tree (at the start of every closure body and before
// every operation the analysis found costly) and compiles it.
func instrument(tree *parser.Tree, weights map[ast.Node]int) (*vm.Program, error) {
	ast.Walk(&tree.Node, &checkpoints{weights: weights})
	cfg := newConfig(evalEnv{})
	if _, err := checker.Check(tree, cfg); err != nil {
		return nil, err
	}
	if err := optimizer.Optimize(&tree.Node, cfg); err != nil {
		return nil, err
	}
	return compiler.Compile(tree, cfg)
}

// checkpoints is the visitor that inserts `__checkpoint(weight); ` sequences.
type checkpoints struct {
	weights map[ast.Node]int
}

func (c *checkpoints) Visit(node *ast.Node) {
	n := *node
	w, ok := c.weights[n]
	if !ok {
		return
	}
	if p, isPred := n.(*ast.PredicateNode); isPred {
		p.Node = withCheckpoint(p.Node, w)
		return
	}
	*node = withCheckpoint(n, w)
}

func withCheckpoint(n ast.Node, w int) ast.Node {
	loc := n.Location()
	callee := &ast.IdentifierNode{Value: checkpointName}
	callee.SetLocation(loc)
	arg := &ast.IntegerNode{Value: w}
	arg.SetLocation(loc)
	call := &ast.CallNode{Callee: callee, Arguments: []ast.Node{arg}}
	call.SetLocation(loc)
	seq := &ast.SequenceNode{Nodes: []ast.Node{call, n}}
	seq.SetLocation(loc)
	return seq
}

// Evaluation is the deadline shared by the expressions evaluated for one request, and by the
// other work done to decide it (Charge: the registry's glob matching of resource patterns): the
// registry evaluates a namespace's bindings in one Evaluation, so that many bindings together
// cannot make a request wait longer than one. The zero value uses Deadline() (DefaultDeadline
// unless set). Not safe for concurrent use.
type Evaluation struct {
	// Deadline is how long the evaluations may run in all (0: the one of SetDeadline,
	// DefaultDeadline by default).
	Deadline time.Duration
	// Context, when set, stops the evaluation too once it is done (the request's own deadline,
	// or the client went away): Evaluate and Charge then return an error wrapping its error
	// (not ErrEvaluationDeadline, and not counted as a deadline).
	Context context.Context
	spent   int       // estimated ns since the clock was last read
	until   time.Time // zero until the clock is first read
	charged int64     // estimated ns charged with Charge in all
}

// machine is a reusable VM with its environment and checkpoint state: evaluation runs on the
// registry's hot path.
type machine struct {
	vm    vm.VM
	env   evalEnv
	clock clock
}

// clock is the deadline state of an Evaluation: estimated work since the clock was last read,
// and the deadline, set at the first read.
type clock struct {
	spent int
	until time.Time
	limit time.Duration
	ctx   context.Context
}

// charge adds estimated work and, every checkEvery of it, reads the clock: it returns
// ErrEvaluationDeadline once the deadline has passed, or the context's error once it is done.
func (c *clock) charge(weight int) error {
	c.spent += weight
	if c.spent < checkEvery {
		return nil
	}
	c.spent = 0
	return c.past()
}

// past reads the clock; the deadline starts at the first read, which happens after at most
// checkEvery of estimated work, so cheap evaluations never read it.
func (c *clock) past() error {
	if c.ctx != nil {
		if err := c.ctx.Err(); err != nil {
			return fmt.Errorf("%w: %w", errStopped, err)
		}
	}
	now := time.Now()
	if c.until.IsZero() {
		c.until = now.Add(c.limit)
		return nil
	}
	if now.After(c.until) {
		return ErrEvaluationDeadline
	}
	return nil
}

// errStopped marks an evaluation stopped by its Context.
var errStopped = errors.New("evaluation stopped")

var machines = sync.Pool{New: func() any {
	m := &machine{}
	m.vm.MemoryBudget = memoryBudget
	m.env.Checkpoint = m.checkpoint
	return m
}}

// checkpoint is called by instrumented programs with the estimated cost of what follows; it
// stops the VM (a panic the VM turns into an error) once the deadline has passed.
func (m *machine) checkpoint(weight int) bool {
	if err := m.clock.charge(weight); err != nil {
		panic(err)
	}
	return true
}

// fast reports whether p may run without checkpoints for groups, and its estimated cost for
// them: when that estimate is at most fastCost (a fraction of the deadline), checkpoints could
// not stop it meaningfully earlier. The estimate scales one of the compile-time estimates (for
// smallInput, or for maxInput) by how much smaller the caller's groups are: every term of the
// estimate grows at least linearly with the input, so scaling the input by s <= 1 scales the
// input-dependent part by at most s.
func (md *meta) fast(groups []string) (int, bool) {
	longest, total := 0, 0
	for _, g := range groups {
		longest = max(longest, len(g))
		total += len(g)
	}
	n := float64(len(groups))
	var est float64
	if n <= smallGroups && longest <= smallGroupLen {
		s := max(n/smallGroups, float64(longest)/smallGroupLen)
		est = md.zeroCost + s*(md.smallCost-md.zeroCost)
	} else {
		s := max(n/MaxGroups, float64(longest)/maxGroupLen, float64(total)/maxGroupBytes)
		if s > 1 {
			return 0, false // larger than the bound assumes: checkpoints, always
		}
		est = md.zeroCost + s*(md.maxCost-md.zeroCost)
	}
	return int(est), est <= fastCost
}

// Evaluate runs a compiled expression for groups within this Evaluation's deadline. A run-time
// error means "deny"; running past the deadline returns an error wrapping ErrEvaluationDeadline
// and counts it in dexterity_groupbinding_evaluation_deadline_total.
func (e *Evaluation) Evaluate(p *vm.Program, groups []string) (bool, error) {
	if p == nil {
		return false, errors.New("failed to evaluate expression: no program")
	}
	m := machines.Get().(*machine)
	m.clock = e.clock()
	prog := p
	cost := 0
	if md := metaOf(p); md != nil {
		if est, ok := md.fast(groups); ok {
			prog, cost = md.plain, est
		}
	}
	var out any
	err := m.clock.charge(cost)
	if err == nil {
		m.env.Groups = groups
		out, err = m.vm.Run(prog, m.env) // by value: the VM then reads fields without copying them
		m.env.Groups = nil
	}
	e.keep(m.clock)
	m.clock = clock{}
	machines.Put(m)
	if err != nil {
		return false, e.failed("evaluate expression", err)
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("expression returned %T, not a boolean", out)
	}
	return b, nil
}

// Charge counts work done to decide the request outside expressions (estimated ns, e.g.
// GlobCost of a resource pattern match) against the Evaluation's deadline. Call it before doing
// the work: it returns an error wrapping ErrEvaluationDeadline (counted like an expression's)
// once the deadline has passed, or one wrapping the Context's error once that is done, and the
// work must then not be done.
func (e *Evaluation) Charge(cost int) error {
	e.charged += int64(cost)
	c := e.clock()
	err := c.charge(cost)
	e.keep(c)
	if err != nil {
		return e.failed("match resource patterns", err)
	}
	return nil
}

// Charged returns the work charged with Charge so far (estimated ns).
func (e *Evaluation) Charged() int64 { return e.charged }

// Stopped reports whether err (from Evaluate or Charge) means the Evaluation's Context was done.
func Stopped(err error) bool { return errors.Is(err, errStopped) }

func (e *Evaluation) clock() clock {
	limit := e.Deadline
	if limit <= 0 {
		limit = time.Duration(deadline.Load())
	}
	return clock{spent: e.spent, until: e.until, limit: limit, ctx: e.Context}
}

func (e *Evaluation) keep(c clock) { e.spent, e.until = c.spent, c.until }

// failed wraps an error of Evaluate or Charge, counting deadline hits.
func (e *Evaluation) failed(what string, err error) error {
	if errors.Is(err, ErrEvaluationDeadline) {
		evaluationDeadlineTotal.Inc()
		return fmt.Errorf("failed to %s: %w (%s)", what, ErrEvaluationDeadline, e.clock().limit)
	}
	return fmt.Errorf("failed to %s: %w", what, err)
}

// Evaluate runs a compiled expression for groups with a deadline of its own.
func Evaluate(p *vm.Program, groups []string) (bool, error) {
	var e Evaluation
	return e.Evaluate(p, groups)
}

// IsTooCostly reports whether err (from Compile) is an expression over the cost bound.
func IsTooCostly(err error) bool {
	var ce *CostError
	return errors.As(err, &ce)
}
