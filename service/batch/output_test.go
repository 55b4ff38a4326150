package batch_test

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/directops/nbp/service/batch"
)

// batchWriter is what both batch output formats offer.
type batchWriter interface {
	Write(rows []batch.Row) error
	Close() error
}

var batchFormats = []struct {
	name string
	open func(io.Writer) batchWriter
	read func(t *testing.T, b []byte) []batch.Row
}{
	{"parquet", func(w io.Writer) batchWriter { return batch.NewParquetWriter(w) }, readParquetBatch},
	{"csv", func(w io.Writer) batchWriter { return batch.NewCSVWriter(w) }, readCSVBatch},
}

// outRow is a row of the Parquet batch output as a reader outside the
// service sees it.
type outRow struct {
	RunID        string  `parquet:"run_id"`
	CustomerID   string  `parquet:"customer_id"`
	Rank         int32   `parquet:"rank"`
	ProductID    string  `parquet:"product_id"`
	Propensity   float64 `parquet:"propensity"`
	Priority     float64 `parquet:"priority"`
	Strategy     string  `parquet:"strategy"`
	ModelVersion string  `parquet:"model_version"`
	Title        string  `parquet:"title"`
	Body         string  `parquet:"body"`
	Reasons      string  `parquet:"reasons"`
}

// batchRow returns row i of a made-up run: Chinese copy with the
// characters CSV must quote, propensities rounded to four places as the
// pipeline writes them, and now and then a number exact to the last bit.
func batchRow(i int) batch.Row {
	products := []string{"TD-3M", "LCD-1Y", "WM-R2", "FUND-IDX", "CC-PLAT", "GOLD-ACC"}
	surnames := []string{"王", "李", "张", "刘", "陈", "欧阳", "司马", "赵\n", "Chen, ", "\"黄\""}
	reasons := []string{"", "AUM_HIGH", "AUM_HIGH,SALARY_ACCOUNT", "TD_MATURING,RISK_C3"}
	exact := []float64{1.0 / 3, 0, 5e-324, 1e-7, math.Nextafter(0.5, 1), -0.1}
	r := rand.New(rand.NewPCG(uint64(i), 7))
	prop, prio := math.Round(r.Float64()*1e4)/1e4, math.Round(r.Float64()*1e6)/1e4
	if i%11 == 0 {
		prop, prio = exact[i%len(exact)], r.NormFloat64()
	}
	p := products[r.IntN(len(products))]
	name := surnames[r.IntN(len(surnames))] + []string{"女士", "先生"}[r.IntN(2)]
	return batch.Row{
		RunID:        "run-20261127",
		CustomerID:   fmt.Sprintf("C%09d", i/3),
		Rank:         i%3 + 1,
		ProductID:    p,
		Propensity:   prop,
		Priority:     prio,
		Strategy:     []string{"model", "rules"}[i%2],
		ModelVersion: "nbp-2026.11.1",
		Title:        name + "，您的" + p + "专属优惠",
		Body:         "尊敬的" + name + "：定期存款年化利率 2.15%，\"限时\"办理。\n详询客户经理。",
		Reasons:      reasons[r.IntN(len(reasons))],
	}
}

func batchRows(from, n int, dst []batch.Row) []batch.Row {
	dst = dst[:0]
	for i := from; i < from+n; i++ {
		dst = append(dst, batchRow(i))
	}
	return dst
}

func readParquetBatch(t *testing.T, b []byte) []batch.Row {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("open parquet: %v", err)
	}
	// The columns, in order, with their types.
	wantTypes := map[string]string{"rank": "INT(32,true)", "propensity": "DOUBLE", "priority": "DOUBLE"}
	var names []string
	for _, c := range f.Root().Columns() {
		names = append(names, c.Name())
		want := wantTypes[c.Name()]
		if want == "" {
			want = "STRING"
		}
		if got := c.Type().String(); got != want || !c.Required() {
			t.Errorf("column %s: %s (required %t), want a required %s", c.Name(), got, c.Required(), want)
		}
	}
	if diff := cmp.Diff(batch.Columns(), names); diff != "" {
		t.Errorf("columns (-want +got):\n%s", diff)
	}
	for g, rg := range f.Metadata().RowGroups {
		if rg.NumRows > 65536 {
			t.Errorf("row group %d: %d rows, want at most 65536", g, rg.NumRows)
		}
		for _, c := range rg.Columns {
			if c.MetaData.Codec != format.Snappy {
				t.Errorf("row group %d, column %v: codec %v, want SNAPPY", g, c.MetaData.PathInSchema, c.MetaData.Codec)
			}
		}
	}

	r := parquet.NewGenericReader[outRow](f)
	defer r.Close()
	out := make([]batch.Row, 0, f.NumRows())
	buf := make([]outRow, 1000)
	for {
		n, err := r.Read(buf)
		for _, o := range buf[:n] {
			out = append(out, batch.Row{
				RunID: o.RunID, CustomerID: o.CustomerID, Rank: int(o.Rank), ProductID: o.ProductID,
				Propensity: o.Propensity, Priority: o.Priority, Strategy: o.Strategy,
				ModelVersion: o.ModelVersion, Title: o.Title, Body: o.Body, Reasons: o.Reasons,
			})
		}
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read parquet: %v", err)
		}
	}
}

func readCSVBatch(t *testing.T, b []byte) []batch.Row {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(b))
	r.FieldsPerRecord = len(batch.Columns())
	head, err := r.Read()
	if err != nil {
		t.Fatalf("csv header: %v", err)
	}
	if diff := cmp.Diff(batch.Columns(), head); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	var out []batch.Row
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read csv: %v", err)
		}
		rank, err1 := strconv.Atoi(rec[2])
		prop, err2 := strconv.ParseFloat(rec[4], 64)
		prio, err3 := strconv.ParseFloat(rec[5], 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatalf("record %q: %v", rec, err)
		}
		if strings.ContainsAny(rec[4]+rec[5], "eE") {
			t.Fatalf("record %q: a number in exponent form", rec)
		}
		out = append(out, batch.Row{
			RunID: rec[0], CustomerID: rec[1], Rank: rank, ProductID: rec[3],
			Propensity: prop, Priority: prio, Strategy: rec[6], ModelVersion: rec[7],
			Title: rec[8], Body: rec[9], Reasons: rec[10],
		})
	}
}

func TestBatchWriters(t *testing.T) {
	const n = 100_000
	want := batchRows(0, n, nil)
	for _, bf := range batchFormats {
		t.Run(bf.name, func(t *testing.T) {
			var out bytes.Buffer
			w := bf.open(&out)
			// Writes of every size, an empty one among them.
			for i, size := 0, 1; i < n; size = size*3 + 1 {
				size = min(size, n-i)
				if err := w.Write(want[i : i+size]); err != nil {
					t.Fatalf("Write: %v", err)
				}
				if err := w.Write(nil); err != nil {
					t.Fatalf("Write(nil): %v", err)
				}
				i += size
			}
			if err := w.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			t.Logf("%d rows: %d bytes, %.1f bytes a row", n, out.Len(), float64(out.Len())/n)

			got := bf.read(t, out.Bytes())
			if len(got) != n {
				t.Fatalf("%d rows read back, want %d", len(got), n)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("row %d (-written +read):\n%s", i, cmp.Diff(want[i], got[i]))
				}
			}
			if !strings.Contains(got[0].Title, "，您的") || !strings.HasPrefix(got[0].Body, "尊敬的") {
				t.Errorf("Chinese copy read back as %q, %q", got[0].Title, got[0].Body)
			}

			if bf.name == "parquet" {
				if diff := cmp.Diff([]int64{65536, n - 65536}, rowGroupSizes(t, out.Bytes())); diff != "" {
					t.Errorf("row group sizes (-want +got):\n%s", diff)
				}
			}

			if err := w.Write(want[:1]); err == nil {
				t.Error("Write after Close succeeded")
			}
			if err := w.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

func TestBatchWritersEmpty(t *testing.T) {
	for _, bf := range batchFormats {
		t.Run(bf.name, func(t *testing.T) {
			var out bytes.Buffer
			w := bf.open(&out)
			if err := w.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if got := bf.read(t, out.Bytes()); len(got) != 0 {
				t.Errorf("%d rows read from an empty output", len(got))
			}
		})
	}
}

// rowGroupSizes returns the rows of each row group of a Parquet file.
func rowGroupSizes(t *testing.T, b []byte) []int64 {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int64
	for _, rg := range f.Metadata().RowGroups {
		sizes = append(sizes, rg.NumRows)
	}
	return sizes
}

func TestParquetBatchWriterRankRange(t *testing.T) {
	if strconv.IntSize < 64 {
		t.Skip("int is 32 bits: every rank fits")
	}
	var out bytes.Buffer
	w := batch.NewParquetWriter(&out)
	rows := batchRows(0, 3, nil)
	rows[2].Rank = math.MaxInt32 + 1
	if err := w.Write(rows); err == nil {
		t.Error("a rank beyond 32 bits was written")
	}
	if err := w.Write(rows[:2]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readParquetBatch(t, out.Bytes()); len(got) != 2 {
		t.Errorf("%d rows written, want only the 2 of the good call", len(got))
	}
}

// TestBatchWritersMemory: the writers stream. Rows reach the output as
// they are written (a Parquet row group at a time), and the live heap does
// not grow with the rows: a Parquet writer holds one row group at most, a
// CSV writer a buffer.
func TestBatchWritersMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 220,000 rows twice")
	}
	type result struct {
		peak          uint64 // most live heap above the start
		before, total int64  // bytes out before Close, and in all
	}
	write := func(open func(io.Writer) batchWriter, n int) result {
		var ms runtime.MemStats
		live := func() uint64 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			return ms.HeapAlloc
		}
		var res result
		var cw countingWriter
		base := live()
		w := open(&cw)
		buf := make([]batch.Row, 0, 1000)
		for i := 0; i < n; i += 1000 {
			buf = batchRows(i, 1000, buf)
			if err := w.Write(buf); err != nil {
				t.Fatal(err)
			}
			if i%10_000 == 9000 {
				if h := live(); h > base && h-base > res.peak {
					res.peak = h - base
				}
			}
		}
		res.before = cw.n
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		res.total = cw.n
		return res
	}
	for _, bf := range batchFormats {
		t.Run(bf.name, func(t *testing.T) {
			small := write(bf.open, 20_000)
			large := write(bf.open, 200_000)
			t.Logf("%.1f bytes a row; peak live heap above the start: %.1f MiB writing 20k rows, %.1f MiB writing 200k",
				float64(large.total)/200_000, float64(small.peak)/(1<<20), float64(large.peak)/(1<<20))
			// 196,608 of the 200,000 rows are in full row groups.
			if large.before < large.total*9/10 {
				t.Errorf("%d of %d bytes out before Close: the rows are held, not streamed", large.before, large.total)
			}
			// A heap that grew with the rows would be ten times larger
			// for ten times the rows (200k rows of values are 45 MiB).
			if limit := 2*small.peak + 8<<20; large.peak > limit {
				t.Errorf("peak live heap %d bytes for 200k rows, want at most %d (20k rows: %d)", large.peak, limit, small.peak)
			}
		})
	}
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}
