// Package authz compiles and evaluates GroupBinding expressions.
package authz

import (
	"fmt"

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

// Evaluate runs a compiled expression for groups. A run-time error means "deny".
func Evaluate(p *vm.Program, groups []string) (bool, error) {
	out, err := expr.Run(p, Env{Groups: groups})
	if err != nil {
		return false, fmt.Errorf("failed to evaluate expression: %w", err)
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("expression returned %T, not a boolean", out)
	}
	return b, nil
}
