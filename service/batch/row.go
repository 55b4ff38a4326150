package batch

import (
	"strings"

	"github.com/directops/nbp/service"
)

// Row is one offer of a batch run, as campaigns receive it: one row
// per customer and rank.
type Row struct {
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

// columns are the output columns, in order.
var columns = [...]string{
	"run_id", "customer_id", "rank", "product_id", "propensity", "priority",
	"strategy", "model_version", "title", "body", "reasons",
}

// Columns returns the output columns, in order: a copy.
func Columns() []string { return append([]string(nil), columns[:]...) }

// Rows appends the rows of one decision.
func Rows(dst []Row, runID string, d *service.Decision) []Row {
	for _, it := range d.Items {
		codes := make([]string, len(it.Reasons))
		for i, r := range it.Reasons {
			codes[i] = r.Code
		}
		dst = append(dst, Row{
			RunID:        runID,
			CustomerID:   d.CustomerID,
			Rank:         it.Rank,
			ProductID:    it.Product.ID,
			Propensity:   service.Round4(it.Propensity),
			Priority:     service.Round4(it.Priority),
			Strategy:     string(d.Strategy),
			ModelVersion: d.ModelVersion,
			Title:        it.Copy.Title,
			Body:         it.Copy.Body,
			Reasons:      strings.Join(codes, ","),
		})
	}
	return dst
}
