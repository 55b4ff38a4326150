package service

import (
	"strings"
)

// BatchRow is one offer of a batch run, as campaigns receive it: one row
// per customer and rank.
type BatchRow struct {
	RunID        string
	CustomerID   string
	Rank         int
	ProductID    string
	Propensity   float64
	Priority     float64
	Strategy     string
	ModelVersion string
	Title        string
	Body         string
	Reasons      string // reason codes, comma-separated
}

// BatchColumns are the output columns, in order.
var BatchColumns = []string{
	"run_id", "customer_id", "rank", "product_id", "propensity", "priority",
	"strategy", "model_version", "title", "body", "reasons",
}

// BatchRows appends the rows of one decision.
func BatchRows(dst []BatchRow, runID string, d *Decision) []BatchRow {
	for _, it := range d.Items {
		codes := make([]string, len(it.Reasons))
		for i, r := range it.Reasons {
			codes[i] = r.Code
		}
		dst = append(dst, BatchRow{
			RunID:        runID,
			CustomerID:   d.CustomerID,
			Rank:         it.Rank,
			ProductID:    it.Product.ID,
			Propensity:   Round4(it.Propensity),
			Priority:     Round4(it.Priority),
			Strategy:     d.Strategy,
			ModelVersion: d.ModelVersion,
			Title:        it.Copy.Title,
			Body:         it.Copy.Body,
			Reasons:      strings.Join(codes, ","),
		})
	}
	return dst
}

// Round4 rounds a score to the four decimals that answers and batch rows
// report.
func Round4(x float64) float64 {
	const k = 1e4
	if x < 0 {
		return -float64(int64(-x*k+0.5)) / k
	}
	return float64(int64(x*k+0.5)) / k
}
