package model_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/directops/nbp/features"
	"github.com/directops/nbp/model"
)

func TestRulesScoreAndFire(t *testing.T) {
	cat := defaultCatalog(t)
	r, err := model.NewRules(cat, features.Names())
	if err != nil {
		t.Fatal(err)
	}
	p, err := cat.Product("WM_CASH")
	if err != nil {
		t.Fatal(err)
	}
	P := len(cat.Products)
	base := features.Missing()
	rich := features.Missing()
	rich.Values[features.DemandBalance] = 80000
	rich.Values[features.AppLogins30D] = 20
	rich.Values[features.SalaryAccount] = 1
	x := append(append([]float32{}, base.Values[:]...), rich.Values[:]...)
	out := make([]float32, 2*P)
	sc, err := r.Score(context.Background(), x, 2, out)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Strategy != model.StrategyRules || !strings.HasPrefix(sc.Version, "rules@") {
		t.Errorf("scored = %+v", sc)
	}
	if got := float64(out[p.Index]); math.Abs(got-p.Rules.Base) > 1e-6 {
		t.Errorf("no signal fires on missing values: got %v, want base %v", got, p.Rules.Base)
	}
	if out[P+p.Index] <= out[p.Index] {
		t.Errorf("idle balance, activity and payroll should raise WM_CASH: %v <= %v", out[P+p.Index], out[p.Index])
	}
	got := r.Fired(p.Index, rich.Values[:], nil)
	want := []string{"IDLE_BALANCE", "ACTIVE_IN_APP", "PAYROLL_CUSTOMER"} // by weight 0.9, 0.5, 0.4
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fired (-want +got):\n%s", diff)
	}
}

func TestRulesRefuseUnknownFeature(t *testing.T) {
	cat := defaultCatalog(t)
	schema := features.Names()
	var short []string
	for _, n := range schema {
		if n != "demand_balance" {
			short = append(short, n)
		}
	}
	_, err := model.NewRules(cat, short)
	if !errors.Is(err, model.ErrMismatch) || !strings.Contains(err.Error(), `product WM_CASH: rules.signals[0].feature: unknown feature "demand_balance"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestPriorIsTheCatalogPrior(t *testing.T) {
	cat := defaultCatalog(t)
	pr := model.NewPrior(cat)
	out := make([]float32, 2*len(cat.Products))
	sc, err := pr.Score(context.Background(), nil, 2, out)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Strategy != model.StrategyNonPersonalised {
		t.Errorf("strategy %q", sc.Strategy)
	}
	for i := range cat.Products {
		for row := 0; row < 2; row++ {
			if got := out[row*len(cat.Products)+i]; got != float32(cat.Products[i].Prior) {
				t.Errorf("row %d %s: %v", row, cat.Products[i].ID, got)
			}
		}
	}
}
