package train

import (
	"log"
	"os"
	"testing"

	"github.com/directops/nbp/model/modeltest"
)

// TestMain starts the real ONNX Runtime once for the package. A missing
// library is a failure, not a skip: the ONNX tests are the only proof that
// the hand-written protobuf encoding is right.
func TestMain(m *testing.M) {
	stop, err := modeltest.StartRuntime()
	if err != nil {
		log.Fatalf("ONNX Runtime not available: %v", err)
	}
	code := m.Run()
	if err := stop(); err != nil {
		log.Printf("destroying ONNX Runtime environment: %v", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
