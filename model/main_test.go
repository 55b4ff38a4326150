package model_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/directops/nbp/model/modeltest"
)

func TestMain(m *testing.M) {
	stop, err := modeltest.StartRuntime()
	if err != nil {
		fmt.Fprintln(os.Stderr, "model tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = stop()
	os.Exit(code)
}
