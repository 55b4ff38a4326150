package main

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/demobank"
	"github.com/directops/nbp/model"
	"github.com/directops/nbp/model/train"
)

// modelFeatures are the schema fields the model reads. Left out: the region
// code (a label, not a quantity), the assessment expiry date (an absolute
// date the policies use) and the consent flags (they decide whether to
// offer, never how much a customer wants a product).
var excluded = map[features.Field]bool{
	features.Region:                true,
	features.RiskAssessedUntil:     true,
	features.MarketingConsent:      true,
	features.PersonalisationOptOut: true,
}

// logScaled are heavy-tailed columns the model reads as log1p.
var logScaled = map[features.Field]bool{
	features.AUM: true, features.DemandBalance: true, features.DemandBalanceAvg3M: true,
	features.TimeDepositBalance: true, features.WealthBalance: true, features.FundBalance: true,
	features.SalaryInflowMonthly: true, features.CardSpendMonthly: true, features.LoanBalance: true,
	features.AppLogins30D: true, features.AppWealthViews30D: true, features.DaysSinceLastLogin: true,
	features.DaysSinceLastContact: true, features.TenureMonths: true,
}

type dataset struct {
	schema []string
	ids    []string
	x      []float32 // n × NumFields, the full schema
	taken  [][]bool  // per customer, per product
	avail  [][]bool  // per customer, per product: may have it
	train  int       // customers [0, train) are the training set
	cols   []features.Field
	n      int
}

func buildDataset(ctx context.Context, cat *catalog.Catalog, seed uint64, asOf time.Time, n int) (*dataset, error) {
	bank, err := demobank.New(seed, asOf, cat)
	if err != nil {
		return nil, err
	}
	P := len(cat.Products)
	ds := &dataset{schema: features.Names(), n: n, x: make([]float32, 0, n*int(features.NumFields))}
	for f := features.Field(0); f < features.NumFields; f++ {
		if !excluded[f] {
			ds.cols = append(ds.cols, f)
		}
	}
	// Customers with i%5 == 0 are held out; order the training set first.
	order := make([]int, 0, n)
	for i := 0; i < n; i++ {
		if i%5 != 0 {
			order = append(order, i)
		}
	}
	ds.train = len(order)
	for i := 0; i < n; i += 5 {
		order = append(order, i)
	}
	var took []int
	for _, i := range order {
		if i%4096 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		id, v := bank.Customer(i)
		ds.ids = append(ds.ids, id)
		ds.x = append(ds.x, v.Values[:]...)
		t := make([]bool, P)
		took = bank.Outcomes(i, id, &v, took[:0])
		for _, k := range took {
			t[k] = true
		}
		ds.taken = append(ds.taken, t)
		ds.avail = append(ds.avail, bank.Available(&v, nil))
	}
	return ds, nil
}

func (ds *dataset) row(i int) []float32 {
	F := int(features.NumFields)
	return ds.x[i*F : (i+1)*F]
}

// fit standardises the model's columns on the training set and fits one
// logistic regression per product on the customers who may have it.
func fit(ctx context.Context, ds *dataset, cat *catalog.Catalog, c config) (*train.Export, error) {
	F := len(ds.cols)
	P := len(cat.Products)
	raw := make([]float32, 0, ds.train*F)
	for i := 0; i < ds.train; i++ {
		r := ds.row(i)
		for _, f := range ds.cols {
			raw = append(raw, r[f])
		}
	}
	mask := make([]bool, F)
	names := make([]string, F)
	for j, f := range ds.cols {
		mask[j] = logScaled[f]
		names[j] = f.String()
	}
	impute, mean, scale := train.NewStandardizer(raw, ds.train, F, mask)
	exp := &train.Export{
		FeatureNames: names,
		ProductIDs:   cat.ProductIDs(),
		Version:      c.version,
		TrainedAt:    c.trainedAt,
		Meta:         map[string]string{"nbp.catalog_version": cat.Version, "nbp.schema_version": fmt.Sprint(features.SchemaVersion)},
		ImputeValue:  impute,
		LogMask:      mask,
		Mean:         mean,
		Scale:        scale,
		Weights:      make([]float32, F*P),
		Bias:         make([]float32, P),
	}
	z := make([]float32, F)
	zs := make([]float64, ds.train*F)
	for i := 0; i < ds.train; i++ {
		exp.Transform(raw[i*F:(i+1)*F], z)
		for j := range z {
			zs[i*F+j] = float64(z[j])
		}
	}
	for k := range cat.Products {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var zk, y []float64
		for i := 0; i < ds.train; i++ {
			if !ds.avail[i][k] {
				continue
			}
			zk = append(zk, zs[i*F:(i+1)*F]...)
			if ds.taken[i][k] {
				y = append(y, 1)
			} else {
				y = append(y, 0)
			}
		}
		w, b, err := train.FitLogistic(zk, len(y), F, y, train.FitOptions{L2: c.l2})
		if err != nil {
			// Too few customers took it up to learn anything: fall back to
			// the base rate (zero weights), and say so.
			rate := (sum(y) + 1) / (float64(len(y)) + 2)
			w, b = make([]float64, F), math.Log(rate/(1-rate))
			fmt.Printf("product %s: %v; using its base rate\n", cat.Products[k].ID, err)
		}
		for j := range w {
			exp.Weights[j*P+k] = float32(w[j])
		}
		exp.Bias[k] = float32(b)
	}
	return exp, exp.Validate()
}

func sum(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s
}

// card holds the evaluation on the holdout.
type card struct {
	rows                            []cardRow
	precModel, precRules, precTruth float64
	meanAUC                         float64
	holdout, judged                 int
}

type cardRow struct {
	id                string
	avail, positives  int
	aucModel, aucRule float64
}

func evaluate(ctx context.Context, ds *dataset, cat *catalog.Catalog, exp *train.Export) (*card, error) {
	P := len(cat.Products)
	F := int(features.NumFields)
	rules, err := model.NewRules(cat, ds.schema)
	if err != nil {
		return nil, err
	}
	hold := ds.n - ds.train
	rs := make([]float32, hold*P)
	if _, err := rules.Score(ctx, ds.x[ds.train*F:], hold, rs); err != nil {
		return nil, err
	}
	ms := make([]float32, hold*P)
	raw := make([]float32, len(ds.cols))
	for i := 0; i < hold; i++ {
		r := ds.row(ds.train + i)
		for j, f := range ds.cols {
			raw[j] = r[f]
		}
		exp.Predict(raw, ms[i*P:(i+1)*P])
	}
	truth := make([]float32, hold*P)
	for i := 0; i < hold; i++ {
		var v features.Vector
		copy(v.Values[:], ds.row(ds.train+i))
		for k := range cat.Products {
			truth[i*P+k] = float32(demobank.Truth(ds.ids[ds.train+i], &v, &cat.Products[k]))
		}
	}
	cd := &card{holdout: hold}
	aucs := 0.0
	for k := range cat.Products {
		var sm, sr, lab []float64
		for i := 0; i < hold; i++ {
			if !ds.avail[ds.train+i][k] {
				continue
			}
			sm = append(sm, float64(ms[i*P+k]))
			sr = append(sr, float64(rs[i*P+k]))
			lab = append(lab, b2f(ds.taken[ds.train+i][k]))
		}
		row := cardRow{id: cat.Products[k].ID, avail: len(lab), positives: int(sum(lab)),
			aucModel: train.AUC(sm, lab), aucRule: train.AUC(sr, lab)}
		cd.rows = append(cd.rows, row)
		if !math.IsNaN(row.aucModel) {
			aucs += row.aucModel
		}
	}
	cd.meanAUC = aucs / float64(countFinite(cd.rows))
	// precision@3 over held-out customers who took something up: of the
	// three products ranked first among those they may have, how many did
	// they take.
	var pm, pr, pt float64
	for i := 0; i < hold; i++ {
		av, tk := ds.avail[ds.train+i], ds.taken[ds.train+i]
		any := false
		for k := range tk {
			any = any || tk[k]
		}
		if !any {
			continue
		}
		cd.judged++
		pm += precisionAt3(ms[i*P:(i+1)*P], av, tk)
		pr += precisionAt3(rs[i*P:(i+1)*P], av, tk)
		pt += precisionAt3(truth[i*P:(i+1)*P], av, tk)
	}
	if cd.judged > 0 {
		cd.precModel, cd.precRules, cd.precTruth = pm/float64(cd.judged), pr/float64(cd.judged), pt/float64(cd.judged)
	}
	return cd, nil
}

func countFinite(rows []cardRow) int {
	n := 0
	for _, r := range rows {
		if !math.IsNaN(r.aucModel) {
			n++
		}
	}
	return max(n, 1)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func precisionAt3(score []float32, avail, taken []bool) float64 {
	idx := make([]int, 0, len(score))
	for k := range score {
		if avail[k] {
			idx = append(idx, k)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return score[idx[a]] > score[idx[b]] })
	hits := 0
	for _, k := range idx[:min(3, len(idx))] {
		if taken[k] {
			hits++
		}
	}
	return float64(hits) / 3
}

func (cd *card) markdown(c config, exp *train.Export) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Model card: %s\n\n", exp.Version)
	fmt.Fprintf(&b, "- File: `propensity.onnx` (ONNX IR 8, opset 17), input `features` float32 [N, %d], outputs `propensity` float32 [N, %d] and `contributions` float32 [N, %d, %d].\n",
		len(exp.FeatureNames), len(exp.ProductIDs), len(exp.FeatureNames), len(exp.ProductIDs))
	fmt.Fprintf(&b, "- Trained: %s by `nbp-train -n %d -seed %d -as-of %s -l2 %g`.\n", exp.TrainedAt.Format(time.RFC3339), c.n, c.seed, c.asOf.Format(time.DateOnly), c.l2)
	fmt.Fprintf(&b, "- Catalog: %s; feature schema version %d.\n", exp.Meta["nbp.catalog_version"], features.SchemaVersion)
	b.WriteString("- Method: one L2-regularised logistic regression per product (gonum LBFGS), fitted on the customers who may have the product (eligible, not holding it, suitable). Missing values are imputed with the training median; money and count columns are read as log1p; every column is standardised.\n")
	fmt.Fprintf(&b, "- Data: the demo bank, a synthetic long-tail customer base; outcomes drawn from a hidden ground-truth propensity. %d customers held out (every fifth), %d of whom took up at least one product.\n\n",
		cd.holdout, cd.judged)
	b.WriteString("## Ranking quality on the holdout\n\n")
	b.WriteString("precision@3: of the three products ranked first among those a customer may have, the share the customer took up (customers with at least one take-up).\n\n")
	b.WriteString("| scorer | precision@3 |\n| --- | --- |\n")
	fmt.Fprintf(&b, "| model | %.3f |\n| rules (catalog) | %.3f |\n| ground truth (ceiling) | %.3f |\n\n", cd.precModel, cd.precRules, cd.precTruth)
	b.WriteString("## Per product, on the holdout\n\n")
	b.WriteString("| product | customers who may have it | took it up | AUC model | AUC rules |\n| --- | ---: | ---: | ---: | ---: |\n")
	for _, r := range cd.rows {
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %s |\n", r.id, r.avail, r.positives, fmtAUC(r.aucModel), fmtAUC(r.aucRule))
	}
	fmt.Fprintf(&b, "\nMean model AUC over products with both classes: %.3f.\n\n", cd.meanAUC)
	b.WriteString("## Limits\n\n")
	b.WriteString("- Synthetic data: the figures say the pipeline learns what the simulation put in, not how the model would do on a real bank's customers. Retrain on real outcomes before real use.\n")
	b.WriteString("- Products with few take-ups (large certificates of deposit, the R5 fund) have noisy AUCs.\n")
	b.WriteString("- The model ranks; it never decides eligibility, suitability or consent. Those are hard filters applied after scoring, on every path.\n")
	return b.String()
}

func fmtAUC(a float64) string {
	if math.IsNaN(a) {
		return "n/a"
	}
	return fmt.Sprintf("%.3f", a)
}
