package model_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/directops/nbp/features"
	"github.com/directops/nbp/model"
	"github.com/directops/nbp/model/modeltest"
)

// modelDir is a model directory holding the committed model, the rules as
// trees (trees-1) and a version whose file is corrupt (broken-1); the
// pointer names the committed model.
func modelDir(t *testing.T) (model.Dir, string) {
	t.Helper()
	cat := defaultCatalog(t)
	trees, _ := treeVersion(t, cat)
	dir := t.TempDir()
	committed, err := modeltest.ModelPath()
	if err != nil {
		t.Fatal(err)
	}
	lr := filepath.Base(filepath.Dir(committed))
	copyDir(t, filepath.Dir(committed), filepath.Join(dir, lr))
	copyDir(t, trees, filepath.Join(dir, "trees-1"))
	copyDir(t, trees, filepath.Join(dir, "broken-1"))
	b, err := os.ReadFile(filepath.Join(dir, "broken-1", model.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.Replace(string(b), `"trees-1"`, `"broken-1"`, 1))
	if err := os.WriteFile(filepath.Join(dir, "broken-1", model.ManifestFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "broken-1", "TD_3M.onnx"), []byte("corrupt"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := model.Dir(dir)
	if err := d.SetCurrent(lr); err != nil {
		t.Fatal(err)
	}
	return d, lr
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRegistrySwapsUnderLoad(t *testing.T) {
	cat := defaultCatalog(t)
	d, lr := modelDir(t)
	r := rules(t, cat)
	open := func(path string) (*model.ONNX, error) {
		return model.Open(path, features.Names(), cat.ProductIDs(), model.ONNXOptions{Workers: 2, Rules: r,
			FeatureReasons: cat.FeatureReasons, Probe: features.Probe(16, 1), Budget: time.Second, BatchBudget: 5 * time.Second})
	}
	var loads, refusals atomic.Int64
	reg, err := model.OpenRegistry(d, open, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg.OnLoad = func(_ string, err error) {
		if err != nil {
			refusals.Add(1)
		} else {
			loads.Add(1)
		}
	}
	live := reg.Live()
	defer live.Close()
	if reg.InForce() != lr {
		t.Fatalf("in force %s", reg.InForce())
	}
	x := demoRows(t, cat, 32)
	F, P := int(features.NumFields), len(cat.Products)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var calls atomic.Int64
	seen := sync.Map{}
	errs := make(chan error, 8)
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]float32, 4*P)
			for i := 0; ctx.Err() == nil; i++ {
				n := 1 + (g+i)%4
				row := (g*5 + i) % (32 - n)
				sc, err := live.Score(context.Background(), x[row*F:(row+n)*F], n, out)
				if err != nil {
					errs <- err
					return
				}
				seen.Store(sc.Version, true)
				for k := range P {
					_ = sc.Explain(0, k, nil)
				}
				sc.Release()
				calls.Add(1)
			}
		}()
	}
	for i := range 10 {
		v := "trees-1"
		if i%2 == 1 {
			v = lr
		}
		if err := reg.Use(v); err != nil {
			t.Fatal(err)
		}
		if cur, _ := d.Current(); cur != v || reg.InForce() != v {
			t.Fatalf("after Use(%s): pointer %s, in force %s", v, cur, reg.InForce())
		}
		time.Sleep(30 * time.Millisecond)
	}
	// Refused: a corrupt file, an unknown version, a bad pointer.
	if err := reg.Use("broken-1"); err == nil || reg.InForce() != lr {
		t.Errorf("broken version: %v, in force %s", err, reg.InForce())
	}
	if err := reg.Use("nope"); !errors.Is(err, model.ErrUnknownVersion) {
		t.Errorf("unknown version: %v", err)
	}
	if err := reg.Reload([]byte("../../etc\n")); err == nil {
		t.Error("a pointer outside the directory was followed")
	}
	if cur, _ := d.Current(); cur != lr {
		t.Errorf("a refused version moved the pointer to %s", cur)
	}
	// A pointer read before a Use and followed after it is stale: the
	// version the Use put in force stays.
	if err := reg.Reload([]byte("trees-1\n")); err != nil || reg.InForce() != lr {
		t.Errorf("stale pointer: %v, in force %s", err, reg.InForce())
	}
	// The pointer file alone (as an operator edits it) swaps too.
	if err := os.WriteFile(filepath.Join(string(d), model.PointerFile), []byte("trees-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := reg.Reload([]byte("trees-1\n")); err != nil || reg.InForce() != "trees-1" {
		t.Errorf("reload: %v, in force %s", err, reg.InForce())
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a call failed during the swaps: %v", err)
	}
	if _, ok := seen.Load("trees-1"); !ok || calls.Load() < 100 {
		t.Errorf("%d calls, versions seen: trees-1 %v", calls.Load(), ok)
	}
	if loads.Load() != 11 || refusals.Load() != 1 {
		t.Errorf("loads %d, refusals %d; want 11 and 1", loads.Load(), refusals.Load())
	}
}
