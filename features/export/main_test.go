package export_test

import (
	"math"
	"os"
	"testing"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features/featurestest"
)

// suite is the package's Redis (see featurestest).
var suite featurestest.Suite

func TestMain(m *testing.M) { os.Exit(suite.Run(m)) }

var nan = float32(math.NaN())

// defaultCatalog parses the embedded catalog or stops the test.
func defaultCatalog(t testing.TB) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	return c
}
