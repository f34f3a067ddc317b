// Package authz compiles and evaluates GroupBinding expressions.
package authz

import (
	"fmt"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

// Env is the environment expressions see: the caller's groups.
type Env struct {
	Groups []string `expr:"groups"`
}

// Compile compiles a GroupBinding expression over `groups []string` and requires it to be a
// boolean. The error carries expr's position (line:column and a caret under the offending token).
func Compile(expression string) (*vm.Program, error) {
	p, err := expr.Compile(expression, expr.Env(Env{}), expr.AsBool())
	if err != nil {
		return nil, fmt.Errorf("does not compile to a boolean over groups: %w", err)
	}
	return p, nil
}

// machines are reusable expr virtual machines: evaluation runs on the registry's hot path.
var machines = sync.Pool{New: func() any { return &vm.VM{} }}

// Evaluate runs a compiled expression for groups. A run-time error means "deny".
func Evaluate(p *vm.Program, groups []string) (bool, error) {
	m := machines.Get().(*vm.VM)
	out, err := m.Run(p, Env{Groups: groups})
	machines.Put(m)
	if err != nil {
		return false, fmt.Errorf("failed to evaluate expression: %w", err)
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("expression returned %T, not a boolean", out)
	}
	return b, nil
}
