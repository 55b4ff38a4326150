package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/model"
	"github.com/directops/nbp/model/train"
)

// swapResult is what -swaps did during nbp's open loop.
type swapResult struct {
	Versions []string `json:"versions"`
	Swaps    int      `json:"swaps"`  // PUTs answered 200
	Failed   int      `json:"failed"` // PUTs not answered 200
	// PutMaxMS is the longest PUT: opening, probing and validating the
	// version, off the request path.
	PutMaxMS float64 `json:"put_max_ms"`
	// Of nbp's answers in the window: 200s later than the deadline, and
	// degraded ones (a model fallback would show here).
	LateOK   uint64 `json:"late_200s"`
	Degraded uint64 `json:"degraded"`
	Errors   uint64 `json:"errors"`
	FirstErr string `json:"first_error,omitempty"`
}

// swapModelDir makes the model directory nbp serves with -swaps: the
// committed model (from the models directory under the working
// directory) and the catalog's rules as per-product tree ensembles, a
// bank's export form. It returns the directory and the two versions.
func swapModelDir(models string) (dir string, versions []string, err error) {
	cur, err := model.Dir(models).Current()
	if err != nil {
		return "", nil, fmt.Errorf("-swaps: %w (run from the repository)", err)
	}
	dir, err = os.MkdirTemp("", "nbp-load-models-")
	if err != nil {
		return "", nil, err
	}
	src := model.Dir(models).Path(cur)
	ents, err := os.ReadDir(src)
	if err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, cur), 0o755); err != nil {
		return "", nil, err
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return "", nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, cur, e.Name()), b, 0o644); err != nil {
			return "", nil, err
		}
	}
	cat, err := catalog.DefaultAt(time.Now())
	if err != nil {
		return "", nil, err
	}
	trees := "rules-trees-" + cat.Version
	if _, err := train.WriteRulesTrees(dir, cat, train.TreeVersion{Version: trees, Columns: features.Names(), TrainedAt: time.Now()}); err != nil {
		return "", nil, err
	}
	if err := model.Dir(dir).SetCurrent(cur); err != nil {
		return "", nil, err
	}
	return dir, []string{trees, cur}, nil
}

// dirVersions returns a model directory's versions for -swaps: the others,
// then the one in force.
func dirVersions(dir string) ([]string, error) {
	d := model.Dir(dir)
	cur, err := d.Current()
	if err != nil {
		return nil, fmt.Errorf("-swap-dir: %w", err)
	}
	all, err := d.Versions()
	if err != nil {
		return nil, fmt.Errorf("-swap-dir: %w", err)
	}
	var vs []string
	for _, v := range all {
		if v != cur {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("-swap-dir: %s holds no version besides %s", dir, cur)
	}
	return append(vs, cur), nil
}

// swapDuring puts the versions in force in turn, n times spread evenly
// over the measured window (after the warm-up), through nbp's admin
// endpoint.
func swapDuring(ctx context.Context, addr string, versions []string, n int, warmup, window time.Duration) swapResult {
	res := swapResult{Versions: versions}
	client := &http.Client{Timeout: 30 * time.Second}
	every := window / time.Duration(n+1)
	t := time.NewTimer(warmup + every)
	defer t.Stop()
	for i := 0; i < n; i++ {
		select {
		case <-ctx.Done():
			return res
		case <-t.C:
		}
		t.Reset(every)
		v := versions[i%len(versions)]
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+addr+"/v1/admin/model", strings.NewReader(`{"version":"`+v+`"}`))
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		resp, err := client.Do(req)
		res.PutMaxMS = max(res.PutMaxMS, float64(time.Since(start).Microseconds())/1000)
		if err != nil {
			res.Failed++
			res.FirstErr = err.Error()
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			res.Failed++
			res.FirstErr = fmt.Sprintf("PUT %s: %d %s", v, resp.StatusCode, body)
			continue
		}
		res.Swaps++
	}
	return res
}
