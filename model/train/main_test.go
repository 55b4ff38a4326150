package train

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"testing"

	ort "github.com/yalue/onnxruntime_go"
)

// TestMain loads the ONNX Runtime shared library once for the package. A
// missing library is a failure, not a skip: the ONNX tests are the only proof
// that the hand-written protobuf encoding is right.
func TestMain(m *testing.M) {
	lib, err := onnxRuntimeLibrary()
	if err != nil {
		log.Fatalf("ONNX Runtime library not available: %v\nrun .ci/fetch-onnxruntime (from the module root) or set ONNXRUNTIME_LIB", err)
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(); err != nil {
		log.Fatalf("initializing ONNX Runtime from %s: %v\nrun .ci/fetch-onnxruntime to fetch a matching library", lib, err)
	}
	code := m.Run()
	if err := ort.DestroyEnvironment(); err != nil {
		log.Printf("destroying ONNX Runtime environment: %v", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// onnxRuntimeLibrary returns the path of libonnxruntime: $ONNXRUNTIME_LIB if
// set, else <module root>/.cache/onnxruntime/libonnxruntime.so.1. The file
// must exist.
func onnxRuntimeLibrary() (string, error) {
	lib := os.Getenv("ONNXRUNTIME_LIB")
	if lib == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", err
		}
		lib = filepath.Join(root, ".cache", "onnxruntime", "libonnxruntime.so.1")
	}
	if _, err := os.Stat(lib); err != nil {
		return "", fmt.Errorf("%s: %w", lib, err)
	}
	return lib, nil
}

// moduleRoot walks up from the working directory to the directory holding
// go.mod.
func moduleRoot() (string, error) {
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
			return "", errors.New("no go.mod found above the working directory")
		}
		dir = parent
	}
}
