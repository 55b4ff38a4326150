// Package modeltest starts the real ONNX Runtime for tests and finds the
// committed model.
package modeltest

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/directops/nbp/model"
)

// Root returns the module root, found by walking up from the working
// directory to go.mod.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// LibPath returns the ONNX Runtime library: ONNXRUNTIME_LIB, or the one
// .ci/fetch-onnxruntime puts under .cache.
func LibPath() (string, error) {
	if p := os.Getenv("ONNXRUNTIME_LIB"); p != "" {
		return filepath.Abs(p)
	}
	root, err := Root()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".cache", "onnxruntime", "libonnxruntime.so.1"), nil
}

// StartRuntime starts ONNX Runtime for a test binary. It fails, never
// skips, when the library is missing: the tests run on the real runtime.
func StartRuntime() (stop func() error, err error) {
	p, err := LibPath()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(p); err != nil {
		return nil, fmt.Errorf("ONNX Runtime library %s missing: run .ci/fetch-onnxruntime (make test does): %w", p, err)
	}
	return model.StartRuntime(p)
}

// ModelPath returns the committed model, models/propensity.onnx.
func ModelPath() (string, error) {
	root, err := Root()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "models", "propensity.onnx"), nil
}
