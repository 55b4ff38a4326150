package demobank

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"

	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/export"
)

// WriteCSV writes customers [0, n) as a feature export (the format the
// loader ingests), with its header.
func (b *Bank) WriteCSV(ctx context.Context, w io.Writer, n int) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	cw := csv.NewWriter(bw)
	if err := cw.Write(export.CSVHeader()); err != nil {
		return err
	}
	rec := make([]string, 0, 3+int(features.NumFields))
	for i := 0; i < n; i++ {
		if i%10000 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		id, v := b.Customer(i)
		rec = export.AppendCSVRecord(rec[:0], id, &v)
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return bw.Flush()
}

// WriteOutcomes writes the simulated take-ups of customers [0, n) as
// customer_id,product_id rows, one per product taken up.
func (b *Bank) WriteOutcomes(ctx context.Context, w io.Writer, n int) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	if _, err := fmt.Fprintln(bw, "customer_id,product_id"); err != nil {
		return err
	}
	var took []int
	for i := 0; i < n; i++ {
		if i%10000 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		id, v := b.Customer(i)
		took = b.Outcomes(i, id, &v, took[:0])
		for _, k := range took {
			if _, err := fmt.Fprintf(bw, "%s,%s\n", id, b.cat.Products[k].ID); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}
