package integration

import (
	"fmt"
	"os"
	"testing"

	"github.com/spiderpool-go/spiderpool/internal/testenv"
	"github.com/spiderpool-go/spiderpool/internal/testutil/uml"
)

// env is the control plane shared by every test of this package.
var env *testenv.Env

func TestMain(m *testing.M) {
	if uml.InGuest() {
		// A test's guest half (uml_ipvlan_test.go) reaches the host's control plane over the
		// network; it starts none of its own.
		os.Exit(m.Run())
	}
	var err error
	env, err = testenv.Start(testenv.Options{})
	if err != nil {
		// The suite exists to test against the real thing: a missing apiserver is a failure, not a skip.
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: stop control plane: %v\n", err)
	}
	os.Exit(code)
}
