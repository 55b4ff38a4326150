package model_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/demobank"
	"github.com/directops/nbp/model"
	"github.com/directops/nbp/model/modeltest"
	"github.com/directops/nbp/model/train"
)

func defaultCatalog(t testing.TB) *catalog.Catalog {
	t.Helper()
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func committedModel(t testing.TB, cat *catalog.Catalog, workers int) *model.ONNX {
	t.Helper()
	path, err := modeltest.ModelPath()
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.LoadONNX(path, features.Names(), cat.ProductIDs(), model.ONNXOptions{Workers: workers, BatchSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// demoRows returns n demo customers as schema rows.
func demoRows(t testing.TB, cat *catalog.Catalog, n int) []float32 {
	t.Helper()
	bank, err := demobank.New(7, time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC), cat)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 0, n*int(features.NumFields))
	for i := 0; i < n; i++ {
		_, v := bank.Customer(i)
		x = append(x, v.Values[:]...)
	}
	return x
}

// smallExport builds a valid model over the given features and products.
func smallExport(t testing.TB, feats, products []string) []byte {
	t.Helper()
	F, P := len(feats), len(products)
	r := rand.New(rand.NewPCG(1, 2))
	e := &train.Export{
		FeatureNames: feats, ProductIDs: products, Version: "test-1", TrainedAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		ImputeValue: make([]float32, F), LogMask: make([]bool, F), Mean: make([]float32, F), Scale: make([]float32, F),
		Weights: make([]float32, F*P), Bias: make([]float32, P),
	}
	for j := range feats {
		e.Scale[j] = 0.01
	}
	for i := range e.Weights {
		e.Weights[i] = float32(r.NormFloat64() * 0.1)
	}
	b, err := e.MarshalONNX()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestONNXMatchesCommittedModelMetadata(t *testing.T) {
	cat := defaultCatalog(t)
	m := committedModel(t, cat, 1)
	info := m.Info()
	if info.Version == "" || info.TrainedAt.IsZero() {
		t.Fatalf("model info incomplete: %+v", info)
	}
	if diff := cmp.Diff(cat.ProductIDs(), info.Products, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("model products differ from the catalog (-catalog +model):\n%s", diff)
	}
	for _, f := range info.Features {
		if _, ok := features.Lookup(f); !ok {
			t.Errorf("model reads %q, not in the schema", f)
		}
	}
}

func TestONNXScoresBatchesLikeSingles(t *testing.T) {
	cat := defaultCatalog(t)
	m := committedModel(t, cat, 2)
	const n = 150 // more than two chunks of 64, with a short last one
	x := demoRows(t, cat, n)
	P, F := len(cat.Products), int(features.NumFields)
	batch := make([]float32, n*P)
	sc, err := m.Score(context.Background(), x, n, batch)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Strategy != model.StrategyModel || sc.Version != m.Version() {
		t.Errorf("scored = %+v", sc)
	}
	one := make([]float32, P)
	for i := 0; i < n; i++ {
		if _, err := m.Score(context.Background(), x[i*F:(i+1)*F], 1, one); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(one, batch[i*P:(i+1)*P], cmpopts.EquateApprox(0, 1e-6)); diff != "" {
			t.Fatalf("row %d: single differs from batch:\n%s", i, diff)
		}
		for k, p := range one {
			if !(p > 0 && p < 1) {
				t.Fatalf("row %d product %d: propensity %v", i, k, p)
			}
		}
	}
}

func TestONNXConcurrentCallsAgree(t *testing.T) {
	cat := defaultCatalog(t)
	m := committedModel(t, cat, 3)
	const n = 40
	x := demoRows(t, cat, n)
	P, F := len(cat.Products), int(features.NumFields)
	want := make([]float32, n*P)
	if _, err := m.Score(context.Background(), x, n, want); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			out := make([]float32, P)
			for rep := 0; rep < 50; rep++ {
				i := (g*7 + rep) % n
				if _, err := m.Score(context.Background(), x[i*F:(i+1)*F], 1, out); err != nil {
					errs <- err
					return
				}
				for k := range out {
					if math.Abs(float64(out[k]-want[i*P+k])) > 1e-6 {
						errs <- errors.New("concurrent result differs")
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestONNXRefusesMismatches(t *testing.T) {
	cat := defaultCatalog(t)
	schema := features.Names()
	ids := cat.ProductIDs()
	tests := []struct {
		name     string
		feats    []string
		products []string
		want     []string // each must appear in the error
	}{
		{"unknown feature", []string{"age", "shoe_size"}, ids, []string{`feature "shoe_size"`}},
		{"product not in catalog", []string{"age"}, append(append([]string{}, ids...), "SPACE_TRIP"), []string{`product "SPACE_TRIP", which the catalog lacks`}},
		{"catalog product not scored", []string{"age"}, ids[1:], []string{`catalog has product "` + ids[0] + `"`}},
		{"several at once", []string{"age", "iq"}, ids[2:], []string{`"iq"`, `"` + ids[0] + `"`, `"` + ids[1] + `"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := model.NewONNX(smallExport(t, tt.feats, tt.products), schema, ids, model.ONNXOptions{Workers: 1})
			if !errors.Is(err, model.ErrMismatch) {
				t.Fatalf("err = %v, want ErrMismatch", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
		})
	}
}

func TestONNXRefusesBrokenFiles(t *testing.T) {
	cat := defaultCatalog(t)
	good := smallExport(t, []string{"age"}, cat.ProductIDs())
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"garbage", []byte("this is not a model")},
		{"truncated", good[:len(good)/2]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := model.NewONNX(tt.data, features.Names(), cat.ProductIDs(), model.ONNXOptions{Workers: 1}); err == nil {
				t.Fatal("a broken model loaded")
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := model.LoadONNX(t.TempDir()+"/none.onnx", features.Names(), cat.ProductIDs(), model.ONNXOptions{})
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestONNXShapeAndContext(t *testing.T) {
	cat := defaultCatalog(t)
	m := committedModel(t, cat, 1)
	P, F := len(cat.Products), int(features.NumFields)
	if _, err := m.Score(context.Background(), make([]float32, F), 2, make([]float32, 2*P)); !errors.Is(err, model.ErrShape) {
		t.Errorf("short input: err = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// The only worker is free, but a cancelled call does not run.
	if _, err := m.Score(ctx, make([]float32, F), 1, make([]float32, P)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: err = %v, want context.Canceled", err)
	}
}
