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

// ModelDir returns the committed model directory, models.
func ModelDir() (string, error) {
	root, err := Root()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "models"), nil
}

// ModelPath returns the committed model's file: propensity.onnx in the
// version the model directory points to.
func ModelPath() (string, error) {
	dir, err := ModelDir()
	if err != nil {
		return "", err
	}
	v, err := model.Dir(dir).Current()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, v, "propensity.onnx"), nil
}
