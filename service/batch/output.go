package batch

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/parquet-go/parquet-go"
)

// errWriterClosed is returned by a batch writer's Write after Close.
var errWriterClosed = errors.New("batch output: write after close")

// batchRecord is a Row as a Parquet row: the columns of Columns,
// in order, none of them nullable. The values repeated over a run (run,
// product, strategy, model version, reason codes) are dictionary-encoded.
type batchRecord struct {
	RunID        string  `parquet:"run_id,dict"`
	CustomerID   string  `parquet:"customer_id"`
	Rank         int32   `parquet:"rank"`
	ProductID    string  `parquet:"product_id,dict"`
	Propensity   float64 `parquet:"propensity"`
	Priority     float64 `parquet:"priority"`
	Strategy     string  `parquet:"strategy,dict"`
	ModelVersion string  `parquet:"model_version,dict"`
	Title        string  `parquet:"title"`
	Body         string  `parquet:"body"`
	Reasons      string  `parquet:"reasons,dict"`
}

// batchRowGroupRows is the most rows a Parquet row group of the batch
// output holds: the writer keeps one row group in memory.
const batchRowGroupRows = 64 << 10

// ParquetWriter streams batch rows to a Parquet file: the columns of
// Columns (strings as UTF-8 STRING, rank as INT32, propensity and
// priority as DOUBLE), Snappy-compressed, in row groups of at most 65,536
// rows, each written out as soon as it is full, so that memory stays flat
// however many rows are written.
//
// Snappy rather than Zstandard: every Hive, Impala and Spark the campaign
// systems may run reads it, and it keeps no 16 MiB encoder window; Zstandard
// would make the files about 40% smaller.
type ParquetWriter struct {
	w      *parquet.GenericWriter[batchRecord]
	recs   []batchRecord
	closed bool
}

// NewParquetWriter returns a writer to w. Nothing is complete before
// Close.
func NewParquetWriter(w io.Writer) *ParquetWriter {
	return &ParquetWriter{
		w: parquet.NewGenericWriter[batchRecord](w,
			parquet.Compression(&parquet.Snappy),
			parquet.MaxRowsPerRowGroup(batchRowGroupRows),
		),
	}
}

// Write appends rows. It fails when a rank does not fit in 32 bits (no
// row of the call is written then), when w fails, or after Close.
func (p *ParquetWriter) Write(rows []Row) error {
	if p.closed {
		return errWriterClosed
	}
	for i := range rows {
		if r := rows[i].Rank; r < math.MinInt32 || r > math.MaxInt32 {
			return fmt.Errorf("batch output: row %d: rank %d out of range", i, r)
		}
	}
	const chunk = 1024
	for len(rows) > 0 {
		n := min(len(rows), chunk)
		p.recs = p.recs[:0]
		for i := range rows[:n] {
			r := &rows[i]
			p.recs = append(p.recs, batchRecord{
				RunID:        r.RunID,
				CustomerID:   r.CustomerID,
				Rank:         int32(r.Rank),
				ProductID:    r.ProductID,
				Propensity:   r.Propensity,
				Priority:     r.Priority,
				Strategy:     r.Strategy,
				ModelVersion: r.ModelVersion,
				Title:        r.Title,
				Body:         r.Body,
				Reasons:      r.Reasons,
			})
		}
		if _, err := p.w.Write(p.recs); err != nil {
			return fmt.Errorf("batch output: parquet: %w", err)
		}
		rows = rows[n:]
	}
	clear(p.recs) // keep no strings of the caller's rows alive
	return nil
}

// Close writes the last row group and the file's footer. It does not
// close w. Closing again does nothing.
func (p *ParquetWriter) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	if err := p.w.Close(); err != nil {
		return fmt.Errorf("batch output: parquet: %w", err)
	}
	return nil
}

// CSVWriter streams batch rows as CSV: a header of Columns, then
// a record per row, numbers in their shortest exact decimal form.
type CSVWriter struct {
	w      *csv.Writer
	rec    []string
	header bool // written
	closed bool
}

// NewCSVWriter returns a writer to w. Output is buffered until Close.
func NewCSVWriter(w io.Writer) *CSVWriter {
	// csv.Writer buffers in the bufio.Writer it is given when that is
	// large enough.
	return &CSVWriter{
		w:   csv.NewWriter(bufio.NewWriterSize(w, 64<<10)),
		rec: make([]string, len(columns)),
	}
}

// Write appends rows, after the header on the first call. It fails when w
// fails, or after Close.
func (c *CSVWriter) Write(rows []Row) error {
	if c.closed {
		return errWriterClosed
	}
	if err := c.writeHeader(); err != nil {
		return err
	}
	for i := range rows {
		r := &rows[i]
		c.rec = append(c.rec[:0],
			r.RunID,
			r.CustomerID,
			strconv.Itoa(r.Rank),
			r.ProductID,
			strconv.FormatFloat(r.Propensity, 'f', -1, 64),
			strconv.FormatFloat(r.Priority, 'f', -1, 64),
			r.Strategy,
			r.ModelVersion,
			r.Title,
			r.Body,
			r.Reasons,
		)
		if err := c.w.Write(c.rec); err != nil {
			return fmt.Errorf("batch output: csv: %w", err)
		}
	}
	return nil
}

func (c *CSVWriter) writeHeader() error {
	if c.header {
		return nil
	}
	if err := c.w.Write(Columns()); err != nil {
		return fmt.Errorf("batch output: csv: %w", err)
	}
	c.header = true
	return nil
}

// Close writes the header if no row was written, and flushes. It does not
// close w. Closing again does nothing.
func (c *CSVWriter) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	if err := c.writeHeader(); err != nil {
		return err
	}
	c.w.Flush()
	if err := c.w.Error(); err != nil {
		return fmt.Errorf("batch output: csv: %w", err)
	}
	return nil
}
