package export_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/format"
	"github.com/redis/go-redis/v9"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/demobank"
	"github.com/directops/nbp/features/export"
	"github.com/directops/nbp/features/featurestest"
	"github.com/directops/nbp/features/redistest"
)

// pqCol is a column of a Parquet file made by a test.
type pqCol struct {
	name string
	node parquet.Node
}

// pqFile writes rows (column name to value; an absent or nil value is a
// null) as a Parquet file, at most rowGroup rows per row group, Snappy
// compressed unless opts say otherwise. A value is a parquet.Value or
// anything parquet.ValueOf takes.
func pqFile(t testing.TB, cols []pqCol, rows []map[string]any, rowGroup int, opts ...parquet.WriterOption) []byte {
	t.Helper()
	group := parquet.Group{}
	for _, c := range cols {
		group[c.name] = c.node
	}
	schema := parquet.NewSchema("export", group)
	fields := schema.Fields()
	prows := make([]parquet.Row, len(rows))
	for r, m := range rows {
		row := make(parquet.Row, len(fields))
		for i, fl := range fields {
			x := m[fl.Name()]
			if x == nil {
				row[i] = parquet.NullValue().Level(0, 0, i)
				continue
			}
			val, ok := x.(parquet.Value)
			if !ok {
				val = parquet.ValueOf(x)
			}
			def := 0
			if fl.Optional() {
				def = 1
			}
			row[i] = val.Level(0, def, i)
		}
		prows[r] = row
	}
	var buf bytes.Buffer
	opts = append([]parquet.WriterOption{
		schema,
		parquet.MaxRowsPerRowGroup(int64(rowGroup)),
		parquet.Compression(&parquet.Snappy),
	}, opts...)
	w := parquet.NewWriter(&buf, opts...)
	if _, err := w.WriteRows(prows); err != nil {
		t.Fatalf("write parquet: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close parquet: %v", err)
	}
	return buf.Bytes()
}

func optional(n parquet.Node) parquet.Node { return parquet.Optional(n) }

// daysOf returns a date as a Parquet DATE value.
func daysOf(y int, m time.Month, d int) int32 { return int32(featurestest.Day(y, m, d)) }

// loadCols are the columns of the Parquet export TestLoadParquet loads,
// of as many types as the warehouse writes.
var loadCols = []pqCol{
	{"customer_id", parquet.String()},
	{"salutation", optional(parquet.String())},
	{"updated_at", optional(parquet.Timestamp(parquet.Millisecond))},
	{"age", optional(parquet.Int(32))},
	{"kyc_level", parquet.Leaf(parquet.Int64Type)},
	{"region", optional(parquet.String())},
	{"aum", optional(parquet.Decimal(2, 18, parquet.Int64Type))},
	{"holds_credit_card", optional(parquet.Leaf(parquet.BooleanType))},
	{"risk_tolerance", optional(parquet.String())},
	{"risk_assessed_until", optional(parquet.Date())},
	{"marketing_consent", optional(parquet.Leaf(parquet.Int32Type))},
	{"personalisation_opt_out", optional(parquet.Leaf(parquet.BooleanType))},
	{"days_since_last_login", optional(parquet.Leaf(parquet.DoubleType))},
	{"app_logins_30d", optional(parquet.Leaf(parquet.FloatType))},
}

// loadRow is a good row of loadCols, changed by the given values.
func loadRow(id string, change map[string]any) map[string]any {
	m := map[string]any{
		"customer_id": id, "age": int32(45), "kyc_level": int64(3), "region": "GD",
		"risk_tolerance": "C3", "risk_assessed_until": daysOf(2027, 3, 31),
		"marketing_consent": int32(1), "personalisation_opt_out": false,
	}
	for k, x := range change {
		m[k] = x
	}
	return m
}

func TestLoadParquet(t *testing.T) {
	ctx := context.Background()
	s := suite.Store(t, features.Options{Now: func() time.Time { return featurestest.LoadTime }})
	rdb := suite.Server().Client(t)
	updated := time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)
	rows := []map[string]any{
		// row 1: a value of every type
		loadRow("C001", map[string]any{
			"salutation": "王女士", "updated_at": updated.UnixMilli(), "aum": int64(15000050),
			"holds_credit_card": true, "days_since_last_login": 2.5, "app_logins_30d": float32(14),
		}),
		// row 2: every optional value null; never assessed
		loadRow("C002", map[string]any{
			"age": int32(30), "kyc_level": int64(2), "region": nil, "risk_tolerance": nil,
			"risk_assessed_until": nil, "marketing_consent": int32(0),
		}),
		loadRow("C003", map[string]any{"age": int32(200)}),                        // row 3
		loadRow("C004", map[string]any{"risk_tolerance": "C6"}),                   // row 4
		loadRow("C005", map[string]any{"region": "XX"}),                           // row 5
		loadRow("C006", map[string]any{"age": nil}),                               // row 6: required
		loadRow("C007", map[string]any{"days_since_last_login": math.NaN()}),      // row 7
		loadRow("C 008", nil),                                                     // row 8
		loadRow("C009", map[string]any{"marketing_consent": int32(2)}),            // row 9
		loadRow("C010", map[string]any{"aum": int64(-1), "salutation": "欧阳\n女士"}), // row 10
		loadRow("C011", map[string]any{"salutation": "李先生", "region": "XJ"}),      // row 11
	}
	in := pqFile(t, loadCols, rows, 3) // several row groups, the last partly filled
	good := []string{"C001", "C002", "C011"}
	wantRejected := map[int]string{ // row -> the reason's key word
		3:  "age",
		4:  "risk_tolerance",
		5:  "region",
		6:  "age: required",
		7:  "days_since_last_login",
		8:  "customer_id",
		9:  "marketing_consent",
		10: "aum",
	}
	rejectedIDs := []string{"C003", "C004", "C005", "C006", "C007", "C 008", "C009", "C010"}

	load := func() (export.LoadSummary, map[int]string) {
		t.Helper()
		got := map[int]string{}
		sum, err := export.LoadParquet(ctx, s, bytes.NewReader(in), int64(len(in)), export.LoadOptions{
			Chunk: 2,
			Now:   featurestest.LoadTime,
			OnReject: func(re *export.RowError) {
				if !errors.Is(re, export.ErrBadRow) {
					t.Errorf("rejected row %d: %v does not wrap ErrBadRow", re.Line, re)
				}
				got[re.Line] = re.Error()
			},
		})
		if err != nil {
			t.Fatalf("LoadParquet: %v", err)
		}
		return sum, got
	}

	sum, rejected := load()
	if diff := cmp.Diff(export.LoadSummary{Loaded: len(good), Rejected: len(wantRejected)}, sum); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
	for row, word := range wantRejected {
		msg, ok := rejected[row]
		if !ok {
			t.Errorf("row %d not rejected", row)
			continue
		}
		if !strings.Contains(msg, word) {
			t.Errorf("row %d rejected for %q, want a reason about %s", row, msg, word)
		}
	}
	if len(rejected) != len(wantRejected) {
		t.Errorf("rejected rows %v, want %v", rejected, wantRejected)
	}
	for _, id := range rejectedIDs {
		if n, err := rdb.Exists(ctx, s.Key(id)).Result(); err != nil || n != 0 {
			t.Errorf("rejected %q: key exists (%d, %v)", id, n, err)
		}
	}

	c1, st, err := s.Get(ctx, "C001")
	if err != nil || st != features.Found {
		t.Fatalf("Get(C001) = %v, %v", st, err)
	}
	want := features.Missing()
	want.UpdatedAt = updated
	want.Salutation = "王女士"
	for f, x := range map[features.Field]float32{
		features.Age: 45, features.KYCLevel: 3, features.Region: float32(catalog.RegionIndex("GD")),
		features.AUM: 150000.5, features.HoldsCreditCard: 1, features.RiskTolerance: 3,
		features.RiskAssessedUntil: featurestest.Day(2027, 3, 31), features.MarketingConsent: 1, features.PersonalisationOptOut: 0,
		features.DaysSinceLastLogin: 2.5, features.AppLogins30D: 14,
	} {
		want.Values[f] = x
	}
	if diff := cmp.Diff(want, c1, featurestest.EquateVectors); diff != "" {
		t.Errorf("C001 (-want +got):\n%s", diff)
	}

	c2, _, err := s.Get(ctx, "C002")
	if err != nil {
		t.Fatal(err)
	}
	want = features.Missing()
	want.UpdatedAt = featurestest.LoadTime // no updated_at: the load time
	for f, x := range map[features.Field]float32{
		features.Age: 30, features.KYCLevel: 2, features.RiskTolerance: 0, // never assessed
		features.MarketingConsent: 0, features.PersonalisationOptOut: 0,
	} {
		want.Values[f] = x
	}
	if diff := cmp.Diff(want, c2, featurestest.EquateVectors); diff != "" {
		t.Errorf("C002, all nulls (-want +got):\n%s", diff)
	}

	// Loading again changes nothing.
	sum2, rejected2 := load()
	if diff := cmp.Diff(sum, sum2); diff != "" {
		t.Errorf("second load's summary (-first +second):\n%s", diff)
	}
	if diff := cmp.Diff(rejected, rejected2); diff != "" {
		t.Errorf("second load's rejects (-first +second):\n%s", diff)
	}
	keys, err := rdb.Keys(ctx, s.Key("*")).Result()
	if err != nil || len(keys) != len(good) {
		t.Errorf("%d keys after two loads (%v), want %d", len(keys), err, len(good))
	}
}

// requiredCSV is a good value of each required column, as CSV text.
var requiredCSV = map[string]string{
	"customer_id": "C1", "age": "45", "kyc_level": "3", "risk_tolerance": "C3",
	"risk_assessed_until": "2027-03-31", "marketing_consent": "1", "personalisation_opt_out": "0",
}

// readOne reads the only row of an export: its id, vector and error.
func readOne(t *testing.T, next func() (string, features.Vector, error)) (string, features.Vector, error) {
	t.Helper()
	id, v, err := next()
	if err != nil && !errors.Is(err, export.ErrBadRow) {
		t.Fatalf("Next: %v", err)
	}
	if _, _, err := next(); err != io.EOF {
		t.Fatalf("second Next = %v, want io.EOF", err)
	}
	return id, v, err
}

// TestParquetTypes: a value of each Parquet type gives the vector (or the
// error) the same value written as CSV text gives.
func TestParquetTypes(t *testing.T) {
	flba := func(n int, x int64) parquet.Value {
		b := new(big.Int).SetInt64(x)
		if x < 0 {
			b.Add(b, new(big.Int).Lsh(big.NewInt(1), uint(8*n)))
		}
		return parquet.FixedLenByteArrayValue(b.FillBytes(make([]byte, n)))
	}
	byteArray := func(b ...byte) parquet.Value { return parquet.ByteArrayValue(b) }
	int96 := func(t time.Time) parquet.Value {
		days := t.Unix()/86400 + 2440588
		nanos := uint64(t.Unix()%86400)*1e9 + uint64(t.Nanosecond())
		return parquet.Int96Value(deprecated.Int96{uint32(nanos), uint32(nanos >> 32), uint32(days)})
	}
	ts := time.Date(2026, 11, 26, 20, 0, 1, 123456789, time.UTC)
	tests := []struct {
		name string
		col  string
		node parquet.Node
		val  any    // nil: null
		csv  string // the same value as CSV text
		bad  bool   // the row is rejected
	}{
		{"int32", "age", parquet.Leaf(parquet.Int32Type), int32(45), "45", false},
		{"int64", "age", parquet.Leaf(parquet.Int64Type), int64(45), "45", false},
		{"int(8)", "age", parquet.Int(8), int32(45), "45", false},
		{"uint(8)", "age", parquet.Uint(8), int32(45), "45", false},
		{"uint(64) max", "age", parquet.Uint(64), int64(-1), "18446744073709551615", true},
		{"int32 negative", "age", parquet.Leaf(parquet.Int32Type), int32(-1), "-1", true},
		{"float", "age", parquet.Leaf(parquet.FloatType), float32(45.5), "45.5", false},
		{"double", "age", parquet.Leaf(parquet.DoubleType), 45.25, "45.25", false},
		{"double tenth", "aum", parquet.Leaf(parquet.DoubleType), 0.1, "0.1", false},
		{"double rounded to float32", "aum", parquet.Leaf(parquet.DoubleType), 123456789.123, "123456789.123", false},
		{"double above max", "aum", parquet.Leaf(parquet.DoubleType), 1.1e12, "1100000000000", true},
		{"double rounds to max", "aum", parquet.Leaf(parquet.DoubleType), 1e12 + 1, "1000000000001", false},
		{"double large", "aum", parquet.Leaf(parquet.DoubleType), 1e12, "1e12", false},
		{"double -0", "aum", parquet.Leaf(parquet.DoubleType), math.Copysign(0, -1), "-0", false},
		{"double NaN", "aum", parquet.Leaf(parquet.DoubleType), math.NaN(), "NaN", true},
		{"double +Inf", "aum", parquet.Leaf(parquet.DoubleType), math.Inf(1), "+Inf", true},
		{"float max", "aum", parquet.Leaf(parquet.FloatType), float32(math.MaxFloat32), "3.4028235e+38", true},
		{"null number", "aum", optional(parquet.Leaf(parquet.DoubleType)), nil, "", false},
		{"null required", "age", optional(parquet.Int(32)), nil, "", true},
		{"bool number", "aum", parquet.Leaf(parquet.BooleanType), true, "1", false},
		{"decimal int32", "aum", parquet.Decimal(2, 9, parquet.Int32Type), int32(12345), "123.45", false},
		{"decimal int64 small", "aum", parquet.Decimal(4, 18, parquet.Int64Type), int64(5), "0.0005", false},
		{"decimal int64 negative", "aum", parquet.Decimal(4, 18, parquet.Int64Type), int64(-5), "-0.0005", true},
		{"decimal scale 0", "age", parquet.Decimal(0, 9, parquet.Int32Type), int32(45), "45", false},
		{"decimal flba", "aum", parquet.Decimal(2, 38, parquet.FixedLenByteArrayType(16)), flba(16, 15000050), "150000.50", false},
		{"decimal flba negative", "aum", parquet.Decimal(3, 38, parquet.FixedLenByteArrayType(16)), flba(16, -1000), "-1.000", true},
		{"decimal byte array", "aum", parquet.Decimal(2, 20, parquet.ByteArrayType), byteArray(0x01, 0x00), "2.56", false},
		{"decimal byte array negative", "aum", parquet.Decimal(2, 20, parquet.ByteArrayType), byteArray(0xff), "-0.01", true},
		{"string number", "aum", parquet.String(), "150000.5", "150000.5", false},
		{"string number with spaces", "aum", parquet.String(), " 7 ", " 7 ", false},
		{"string not a number", "aum", parquet.String(), "abc", "abc", true},
		{"empty string number", "aum", parquet.String(), "", "", false},
		{"flag bool true", "holds_gold", parquet.Leaf(parquet.BooleanType), true, "1", false},
		{"flag bool false", "holds_gold", parquet.Leaf(parquet.BooleanType), false, "0", false},
		{"flag int32 2", "holds_gold", parquet.Leaf(parquet.Int32Type), int32(2), "2", true},
		{"flag double 1", "holds_gold", parquet.Leaf(parquet.DoubleType), 1.0, "1", false},
		{"flag float 0.5", "holds_gold", parquet.Leaf(parquet.FloatType), float32(0.5), "0.5", true},
		{"flag -0", "holds_gold", parquet.Leaf(parquet.DoubleType), math.Copysign(0, -1), "-0", true},
		{"region", "region", parquet.String(), "GD", "GD", false},
		{"region enum", "region", parquet.Enum(), "SH", "SH", false},
		{"region plain byte array", "region", parquet.Leaf(parquet.ByteArrayType), "BJ", "BJ", false},
		{"region unknown", "region", parquet.String(), "XX", "XX", true},
		{"tolerance", "risk_tolerance", parquet.String(), "C5", "C5", false},
		{"tolerance empty", "risk_tolerance", parquet.String(), "", "", false},
		{"tolerance null", "risk_tolerance", optional(parquet.String()), nil, "", false},
		{"tolerance C6", "risk_tolerance", parquet.String(), "C6", "C6", true},
		{"date", "risk_assessed_until", parquet.Date(), daysOf(2027, 3, 31), "2027-03-31", false},
		{"date before 1970", "risk_assessed_until", parquet.Date(), daysOf(1969, 12, 31), "1969-12-31", false},
		{"date as string", "risk_assessed_until", parquet.String(), "2027-03-31", "2027-03-31", false},
		{"date as bad string", "risk_assessed_until", parquet.String(), "2027-02-30", "2027-02-30", true},
		{"date beyond year 9999", "risk_assessed_until", parquet.Date(), int32(3_000_000), "+10183-08-09", true},
		{"timestamp millis", "updated_at", parquet.Timestamp(parquet.Millisecond), ts.UnixMilli(), "2026-11-26T20:00:01.123Z", false},
		{"timestamp micros", "updated_at", parquet.Timestamp(parquet.Microsecond), ts.UnixMicro(), "2026-11-26T20:00:01.123456Z", false},
		{"timestamp nanos", "updated_at", parquet.Timestamp(parquet.Nanosecond), ts.UnixNano(), "2026-11-26T20:00:01.123456789Z", false},
		{"timestamp int96", "updated_at", parquet.Leaf(parquet.Int96Type), int96(ts), "2026-11-26T20:00:01.123456789+00:00", false},
		{"timestamp string", "updated_at", parquet.String(), "2026-11-27T04:00:01+08:00", "2026-11-27T04:00:01+08:00", false},
		{"timestamp null", "updated_at", optional(parquet.Timestamp(parquet.Millisecond)), nil, "", false},
		{"id int64", "customer_id", parquet.Leaf(parquet.Int64Type), int64(12345), "12345", false},
		{"id negative", "customer_id", parquet.Leaf(parquet.Int64Type), int64(-1), "-1", false},
		{"id null", "customer_id", optional(parquet.String()), nil, "", true},
		{"salutation", "salutation", parquet.String(), "欧阳女士", "欧阳女士", false},
		{"salutation not UTF-8", "salutation", parquet.Leaf(parquet.ByteArrayType), byteArray(0xff, 0xfe), "\xff\xfe", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The required columns as strings, and the column under test.
			var cols []pqCol
			row := map[string]any{}
			header := []string{}
			rec := []string{}
			for _, c := range export.RequiredColumns() {
				if c != tt.col {
					cols = append(cols, pqCol{c, parquet.String()})
					row[c] = requiredCSV[c]
					header, rec = append(header, c), append(rec, requiredCSV[c])
				}
			}
			cols = append(cols, pqCol{tt.col, tt.node})
			row[tt.col] = tt.val
			header, rec = append(header, tt.col), append(rec, tt.csv)

			in := pqFile(t, cols, []map[string]any{row}, 10)
			pr, err := export.NewParquetReader(bytes.NewReader(in), int64(len(in)), featurestest.LoadTime)
			if err != nil {
				t.Fatalf("NewParquetReader: %v", err)
			}
			gotID, got, gotErr := readOne(t, pr.Next)

			var csvIn bytes.Buffer
			cw := csv.NewWriter(&csvIn)
			_ = cw.Write(header)
			_ = cw.Write(rec)
			cw.Flush()
			cr, err := export.NewReader(&csvIn, featurestest.LoadTime)
			if err != nil {
				t.Fatalf("NewReader: %v", err)
			}
			wantID, want, wantErr := readOne(t, cr.Next)

			if (gotErr != nil) != tt.bad || (wantErr != nil) != tt.bad {
				t.Fatalf("Parquet error %v, CSV error %v; want a bad row: %t", gotErr, wantErr, tt.bad)
			}
			if gotErr != nil {
				var re *export.RowError
				if !errors.As(gotErr, &re) || re.Line != 1 {
					t.Errorf("error %v: want a *RowError of row 1", gotErr)
				}
				if !strings.Contains(gotErr.Error(), tt.col) {
					t.Errorf("error %q does not name %s", gotErr, tt.col)
				}
				return
			}
			if gotID != wantID {
				t.Errorf("id %q, CSV gives %q", gotID, wantID)
			}
			if diff := cmp.Diff(want, got, featurestest.ValueBits); diff != "" {
				t.Errorf("vector (-CSV +Parquet):\n%s", diff)
			}
		})
	}
}

func TestParquetHeaderRefused(t *testing.T) {
	// required returns the required columns as strings, with the given
	// columns added or, when nil, removed.
	required := func(change map[string]parquet.Node) []pqCol {
		var cols []pqCol
		for _, c := range export.RequiredColumns() {
			if n, ok := change[c]; !ok {
				cols = append(cols, pqCol{c, parquet.String()})
			} else if n != nil {
				cols = append(cols, pqCol{c, n})
			}
		}
		for c, n := range change {
			if !strings.Contains(strings.Join(export.RequiredColumns(), " "), c) {
				cols = append(cols, pqCol{c, n})
			}
		}
		return cols
	}
	tests := []struct {
		name string
		cols []pqCol
		want string
	}{
		{"required column missing", required(map[string]parquet.Node{"age": nil}), `required column "age" missing`},
		{"unknown column", required(map[string]parquet.Node{"agee": parquet.Int(32)}), `unknown column "agee"`},
		{"nested column", required(map[string]parquet.Node{"aum": parquet.Group{"cny": parquet.Int(64)}}), `"aum": nested`},
		{"repeated column", required(map[string]parquet.Node{"aum": parquet.Repeated(parquet.Leaf(parquet.DoubleType))}), `"aum": nested or repeated`},
		{"date for a number", required(map[string]parquet.Node{"age": parquet.Date()}), `"age": type DATE`},
		{"int for a region", required(map[string]parquet.Node{"region": parquet.Int(32)}), `"region": type`},
		{"int for a tolerance", required(map[string]parquet.Node{"risk_tolerance": parquet.Int(32)}), `"risk_tolerance": type`},
		{"timestamp for a date", required(map[string]parquet.Node{"risk_assessed_until": parquet.Timestamp(parquet.Millisecond)}), `"risk_assessed_until": type TIMESTAMP`},
		{"local timestamp", required(map[string]parquet.Node{"updated_at": parquet.TimestampAdjusted(parquet.Millisecond, false)}), `"updated_at": type TIMESTAMP(isAdjustedToUTC=false`},
		{"double for a time", required(map[string]parquet.Node{"updated_at": parquet.Leaf(parquet.DoubleType)}), `"updated_at": type`},
		{"int for a salutation", required(map[string]parquet.Node{"salutation": parquet.Int(32)}), `"salutation": type`},
		{"double for an id", required(map[string]parquet.Node{"customer_id": parquet.Leaf(parquet.DoubleType)}), `"customer_id": type`},
		{"json for a number", required(map[string]parquet.Node{"aum": parquet.JSON()}), `"aum": type JSON`},
		{"fixed bytes for a number", required(map[string]parquet.Node{"aum": parquet.Leaf(parquet.FixedLenByteArrayType(4))}), `"aum": type`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := pqFile(t, tt.cols, nil, 10)
			_, err := export.NewParquetReader(bytes.NewReader(in), int64(len(in)), featurestest.LoadTime)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewParquetReader error %v, want one with %q", err, tt.want)
			}
		})
	}

	t.Run("not parquet", func(t *testing.T) {
		good := pqFile(t, required(nil), []map[string]any{requiredRow()}, 10)
		for name, in := range map[string][]byte{
			"empty":          nil,
			"csv":            []byte(strings.Join(export.RequiredColumns(), ",") + "\nC1,45,3,,,1,0\n"),
			"truncated":      good[:len(good)-1],
			"footer cut":     good[len(good)/2:],
			"huge footer":    append(append(good[:4:4], 0xff, 0xff, 0xff, 0x7f), "PAR1"...),
			"header garbled": append([]byte("PAR2"), good[4:]...),
		} {
			if _, err := export.NewParquetReader(bytes.NewReader(in), int64(len(in)), featurestest.LoadTime); err == nil {
				t.Errorf("%s: NewParquetReader accepted it", name)
			}
		}
	})
}

func TestParquetCompression(t *testing.T) {
	rows := []map[string]any{loadRow("C001", map[string]any{"salutation": "王女士", "aum": int64(15000050)})}
	want := features.Missing()
	want.UpdatedAt = featurestest.LoadTime
	want.Salutation = "王女士"
	for f, x := range map[features.Field]float32{
		features.Age: 45, features.KYCLevel: 3, features.Region: float32(catalog.RegionIndex("GD")),
		features.AUM: 150000.5, features.RiskTolerance: 3, features.RiskAssessedUntil: featurestest.Day(2027, 3, 31),
		features.MarketingConsent: 1, features.PersonalisationOptOut: 0,
	} {
		want.Values[f] = x
	}
	tests := []struct {
		codec parquet.WriterOption
		name  string
		ok    bool
	}{
		{parquet.Compression(&parquet.Uncompressed), "uncompressed", true},
		{parquet.Compression(&parquet.Snappy), "snappy", true},
		{parquet.Compression(&parquet.Gzip), "gzip", true},
		{parquet.Compression(&parquet.Brotli), "brotli", true},
		{parquet.Compression(&parquet.Zstd), "zstd", true},
		{parquet.Compression(&parquet.Lz4Raw), "lz4", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := pqFile(t, loadCols, rows, 10, tt.codec)
			pr, err := export.NewParquetReader(bytes.NewReader(in), int64(len(in)), featurestest.LoadTime)
			if !tt.ok {
				if err == nil || !strings.Contains(err.Error(), "compression") {
					t.Errorf("NewParquetReader error %v, want the compression refused", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			id, v, err := readOne(t, pr.Next)
			if err != nil || id != "C001" {
				t.Fatalf("Next = %q, %v", id, err)
			}
			if diff := cmp.Diff(want, v, featurestest.EquateVectors); diff != "" {
				t.Errorf("vector (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParquetCorruptPage: a page header that claims more than its column
// chunk holds stops the reader with an error, not a bad row or a panic,
// and the reader stays stopped.
func TestParquetCorruptPage(t *testing.T) {
	rows := make([]map[string]any, 20)
	for i := range rows {
		rows[i] = loadRow(fmt.Sprintf("C%03d", i), nil)
	}
	good := pqFile(t, loadCols, rows, 10)
	f, err := parquet.OpenFile(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	// The first page of the second row group's largest column chunk: its
	// header's compressed size (field 3) is made as large as its bytes
	// can hold, which is more than the chunk has.
	var md format.ColumnMetaData
	for _, c := range f.Metadata().RowGroups[1].Columns {
		if c.MetaData.TotalCompressedSize > md.TotalCompressedSize {
			md = c.MetaData
		}
	}
	at := md.DataPageOffset
	if md.DictionaryPageOffset != 0 {
		at = md.DictionaryPageOffset
	}
	bad := bytes.Clone(good)
	// Compact protocol: field 1 (i32 type), field 2 (i32), field 3 (i32),
	// each a header byte and a varint.
	i := int(at) + 1
	for bad[i]&0x80 != 0 {
		i++
	}
	i += 2 // the last byte of field 1's value, field 2's header
	for bad[i]&0x80 != 0 {
		i++
	}
	i += 2 // field 3's header
	start := i
	for bad[i]&0x80 != 0 {
		bad[i] = 0xff
		i++
	}
	bad[i] = 0x7f
	bad[start] &^= 1 // zigzag: even is positive
	pr, err := export.NewParquetReader(bytes.NewReader(bad), int64(len(bad)), featurestest.LoadTime)
	if err != nil {
		t.Fatalf("NewParquetReader read beyond the footer: %v", err)
	}
	var re *export.RowError
	for row := 1; ; row++ {
		_, _, err := pr.Next()
		if err == nil {
			continue
		}
		if err == io.EOF || errors.As(err, &re) || row != 11 {
			t.Fatalf("row %d: %v; want a read error at row 11", row, err)
		}
		t.Logf("row %d: %v", row, err)
		if !strings.Contains(err.Error(), "row group 1") {
			t.Errorf("error %q does not name the row group", err)
		}
		if _, _, again := pr.Next(); again != err {
			t.Errorf("Next after %v = %v, want the same error", err, again)
		}
		break
	}
}

// requiredRow is a good row of the required columns, as strings.
func requiredRow() map[string]any {
	m := map[string]any{}
	for c, x := range requiredCSV {
		m[c] = x
	}
	return m
}

func TestLoadParquetStops(t *testing.T) {
	ctx := context.Background()
	cols := make([]pqCol, len(export.RequiredColumns()))
	for i, c := range export.RequiredColumns() {
		cols[i] = pqCol{c, parquet.String()}
	}
	rows := make([]map[string]any, 50)
	for i := range rows {
		rows[i] = requiredRow()
		rows[i]["customer_id"] = fmt.Sprintf("C%d", i)
	}
	good := pqFile(t, cols, rows, 10)

	t.Run("bad header", func(t *testing.T) {
		s := suite.Store(t, features.Options{})
		in := pqFile(t, cols[:2], []map[string]any{requiredRow()}, 10)
		sum, err := export.LoadParquet(ctx, s, bytes.NewReader(in), int64(len(in)), export.LoadOptions{})
		if err == nil || sum != (export.LoadSummary{}) {
			t.Errorf("LoadParquet = %+v, %v; want an error and nothing loaded", sum, err)
		}
	})

	t.Run("input fails", func(t *testing.T) {
		// The footer reads, the pages do not: no bad row, the load stops.
		s := suite.Store(t, features.Options{})
		disk := errors.New("disk gone")
		footer := int64(len(good)) - 8 - int64(binary.LittleEndian.Uint32(good[len(good)-8:]))
		in := &failingReaderAt{r: bytes.NewReader(good), from: 4, to: footer, err: disk}
		if _, err := export.NewParquetReader(in, int64(len(good)), featurestest.LoadTime); err != nil {
			t.Fatalf("NewParquetReader read more than the footer: %v", err)
		}
		sum, err := export.LoadParquet(ctx, s, in, int64(len(good)), export.LoadOptions{Chunk: 5})
		var re *export.RowError
		if !errors.Is(err, disk) || errors.As(err, &re) || sum != (export.LoadSummary{}) {
			t.Errorf("LoadParquet = %+v, %v; want it stopped by the read error", sum, err)
		}
	})

	t.Run("store unreachable", func(t *testing.T) {
		port, err := redistest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		rdb := redis.NewUniversalClient(features.RedisOptions([]string{net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}, "", features.DefaultTimeouts()))
		t.Cleanup(func() { _ = rdb.Close() })
		s := features.NewStore(rdb, features.Options{})
		sum, err := export.LoadParquet(ctx, s, bytes.NewReader(good), int64(len(good)), export.LoadOptions{Chunk: 1})
		if !errors.Is(err, features.ErrUnavailable) || sum.Loaded != 0 {
			t.Errorf("LoadParquet = %+v, %v; want ErrUnavailable and nothing loaded", sum, err)
		}
	})

	t.Run("no OnReject", func(t *testing.T) {
		s := suite.Store(t, features.Options{})
		bad := append(rows[:2:2], requiredRow())
		bad[2]["age"] = "abc"
		in := pqFile(t, cols, bad, 10)
		sum, err := export.LoadParquet(ctx, s, bytes.NewReader(in), int64(len(in)), export.LoadOptions{})
		if err != nil || sum != (export.LoadSummary{Loaded: 2, Rejected: 1}) {
			t.Errorf("LoadParquet = %+v, %v; want 2 loaded and 1 rejected", sum, err)
		}
		v, st, err := s.Get(ctx, "C0")
		if err != nil || st != features.Found || !v.UpdatedAt.Equal(featurestest.LoadTime) { // the store's clock
			t.Errorf("Get(C0) = %v (updated %v), %v", st, v.UpdatedAt, err)
		}
	})
}

// failingReaderAt fails reads that touch [from, to).
type failingReaderAt struct {
	r        io.ReaderAt
	from, to int64
	err      error
}

func (f *failingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < f.to && off+int64(len(p)) > f.from {
		return 0, f.err
	}
	return f.r.ReadAt(p, off)
}

// exportCols are the columns of a full export as Parquet: numbers as
// FLOAT and DOUBLE in turn, flags as BOOLEAN, dates as DATE, the time as a
// TIMESTAMP, the rest as strings; every column optional.
func exportCols() []pqCol {
	cols := []pqCol{
		{export.ColumnCustomerID, parquet.String()},
		{export.ColumnSalutation, optional(parquet.String())},
		{export.ColumnUpdatedAt, optional(parquet.Timestamp(parquet.Millisecond))},
	}
	for f := features.Field(0); f < features.NumFields; f++ {
		var n parquet.Node
		switch f.Spec().Kind {
		case features.Number:
			if f%2 == 0 {
				n = parquet.Leaf(parquet.FloatType)
			} else {
				n = parquet.Leaf(parquet.DoubleType)
			}
		case features.Flag:
			n = parquet.Leaf(parquet.BooleanType)
		case features.Date:
			n = parquet.Date()
		default:
			n = parquet.String()
		}
		cols = append(cols, pqCol{f.String(), optional(n)})
	}
	return cols
}

// exportRow is a customer as a row of exportCols.
func exportRow(id string, v *features.Vector) map[string]any {
	m := map[string]any{
		export.ColumnCustomerID: id,
		export.ColumnSalutation: v.Salutation,
		export.ColumnUpdatedAt:  v.UpdatedAt.UnixMilli(),
	}
	for f := features.Field(0); f < features.NumFields; f++ {
		x := v.Values[f]
		if x != x {
			continue // null
		}
		switch f.Spec().Kind {
		case features.Number:
			if f%2 == 0 {
				m[f.String()] = x
			} else {
				m[f.String()] = float64(x)
			}
		case features.Flag:
			m[f.String()] = x == 1
		case features.Date:
			m[f.String()] = int32(x)
		default:
			if s := export.FormatValue(f, x); s != "" {
				m[f.String()] = s
			}
		}
	}
	return m
}

// TestParquetMatchesCSV: a demo bank exported as CSV and as Parquet loads
// the same vectors, read by read and in the store.
func TestParquetMatchesCSV(t *testing.T) {
	ctx := context.Background()
	const n = 3000
	bank, err := demobank.New(42, time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC), defaultCatalog(t))
	if err != nil {
		t.Fatal(err)
	}
	var csvIn bytes.Buffer
	if err := bank.WriteCSV(ctx, &csvIn, n); err != nil {
		t.Fatal(err)
	}
	rows := make([]map[string]any, n)
	for i := range rows {
		id, v := bank.Customer(i)
		rows[i] = exportRow(id, &v)
	}
	pq := pqFile(t, exportCols(), rows, 1000)
	t.Logf("%d customers: CSV %d bytes, Parquet %d bytes", n, csvIn.Len(), len(pq))

	cr, err := export.NewReader(bytes.NewReader(csvIn.Bytes()), featurestest.LoadTime)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := export.NewParquetReader(bytes.NewReader(pq), int64(len(pq)), featurestest.LoadTime)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		wantID, want, wantErr := cr.Next()
		gotID, got, gotErr := pr.Next()
		if wantErr == io.EOF || gotErr == io.EOF {
			if wantErr != gotErr || i != n {
				t.Fatalf("row %d: CSV %v, Parquet %v; want both at the end after %d", i+1, wantErr, gotErr, n)
			}
			break
		}
		if wantErr != nil || gotErr != nil {
			t.Fatalf("row %d: CSV %v, Parquet %v", i+1, wantErr, gotErr)
		}
		if gotID != wantID {
			t.Fatalf("row %d: id %q, CSV %q", i+1, gotID, wantID)
		}
		if diff := cmp.Diff(want, got, featurestest.ValueBits); diff != "" {
			t.Fatalf("%s (-CSV +Parquet):\n%s", wantID, diff)
		}
	}

	// Loaded into the store, the two give the same vectors.
	sCSV := suite.Store(t, features.Options{}) // each with a prefix of its own
	sPQ := suite.Store(t, features.Options{})
	sum, err := export.LoadCSV(ctx, sCSV, bytes.NewReader(csvIn.Bytes()), export.LoadOptions{Now: featurestest.LoadTime})
	if err != nil || sum != (export.LoadSummary{Loaded: n}) {
		t.Fatalf("LoadCSV = %+v, %v", sum, err)
	}
	sum, err = export.LoadParquet(ctx, sPQ, bytes.NewReader(pq), int64(len(pq)), export.LoadOptions{Now: featurestest.LoadTime, Chunk: 256})
	if err != nil || sum != (export.LoadSummary{Loaded: n}) {
		t.Fatalf("LoadParquet = %+v, %v", sum, err)
	}
	for i := 0; i < n; i += 7 {
		id := demobank.ID(i)
		want, st1, err1 := sCSV.Get(ctx, id)
		got, st2, err2 := sPQ.Get(ctx, id)
		if err1 != nil || err2 != nil || st1 != features.Found || st2 != features.Found {
			t.Fatalf("Get(%s): CSV %v, %v; Parquet %v, %v", id, st1, err1, st2, err2)
		}
		if diff := cmp.Diff(want, got, featurestest.EquateVectors); diff != "" {
			t.Fatalf("%s stored (-CSV +Parquet):\n%s", id, diff)
		}
		_, src := bank.Customer(i)
		if diff := cmp.Diff(src, got, featurestest.EquateVectors); diff != "" {
			t.Fatalf("%s stored (-generated +Parquet):\n%s", id, diff)
		}
	}
}

// TestParquetStringsMatchCSV: an export of string columns, good cells and
// bad, reads as the same export in CSV does: same ids, vectors, rejected
// rows and reasons.
func TestParquetStringsMatchCSV(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 14))
	header := export.CSVHeader()
	cols := make([]pqCol, len(header))
	for i, c := range header {
		cols[i] = pqCol{c, optional(parquet.String())}
	}
	bad := []string{"", " ", "abc", "-1", "1e400", "NaN", "0x1p4", " 45 ", "C6", "XX", "2027-02-30", "2", "1_000", "+3"}
	const n = 2000
	rows := make([]map[string]any, n)
	lines := make([]int, n+1) // the CSV line of each row
	var csvIn bytes.Buffer
	cw := csv.NewWriter(&csvIn)
	_ = cw.Write(header)
	line := 2
	for i := range rows {
		v := randomVector(r)
		rec := export.AppendCSVRecord(nil, fmt.Sprintf("C%d", i), &v)
		if r.IntN(3) == 0 {
			rec[r.IntN(len(rec))] = bad[r.IntN(len(bad))]
		}
		rows[i] = map[string]any{}
		for j, cell := range rec {
			if cell == "" && r.IntN(2) == 0 {
				continue // null and empty are the same
			}
			rows[i][header[j]] = cell
		}
		_ = cw.Write(rec)
		lines[i+1] = line
		line += 1 + strings.Count(strings.Join(rec, ""), "\n")
	}
	cw.Flush()
	pq := pqFile(t, cols, rows, 500)

	cr, err := export.NewReader(&csvIn, featurestest.LoadTime)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := export.NewParquetReader(bytes.NewReader(pq), int64(len(pq)), featurestest.LoadTime)
	if err != nil {
		t.Fatal(err)
	}
	rejected := 0
	for row := 1; ; row++ {
		wantID, want, wantErr := cr.Next()
		gotID, got, gotErr := pr.Next()
		if wantErr == io.EOF || gotErr == io.EOF {
			if wantErr != gotErr || row != n+1 {
				t.Fatalf("row %d: CSV %v, Parquet %v; want both at the end", row, wantErr, gotErr)
			}
			break
		}
		var wantRE, gotRE *export.RowError
		if errors.As(wantErr, &wantRE) != errors.As(gotErr, &gotRE) {
			t.Fatalf("row %d: CSV %v, Parquet %v", row, wantErr, gotErr)
		}
		if gotRE != nil {
			rejected++
			// A CSV export's line counts its header and the lines a
			// salutation spans; a Parquet row number counts rows.
			if gotRE.Line != row || wantRE.Line != lines[row] {
				t.Errorf("row %d rejected as row %d, CSV line %d", row, gotRE.Line, wantRE.Line)
			}
			if gotRE.Err.Error() != wantRE.Err.Error() {
				t.Errorf("row %d rejected for %q, CSV for %q", row, gotRE.Err, wantRE.Err)
			}
			continue
		}
		if wantErr != nil || gotErr != nil {
			t.Fatalf("row %d: CSV %v, Parquet %v", row, wantErr, gotErr)
		}
		if gotID != wantID {
			t.Errorf("row %d: id %q, CSV %q", row, gotID, wantID)
		}
		if diff := cmp.Diff(want, got, featurestest.ValueBits); diff != "" {
			t.Errorf("row %d (-CSV +Parquet):\n%s", row, diff)
		}
	}
	if rejected == 0 || rejected == n {
		t.Errorf("%d of %d rows rejected: the test does not test", rejected, n)
	}
	t.Logf("%d of %d rows rejected by both", rejected, n)
}

// FuzzParquetReader: no input panics the reader or keeps it from the
// end; bad rows carry the number of the row.
func FuzzParquetReader(f *testing.F) {
	rows := []map[string]any{
		loadRow("C001", map[string]any{"salutation": "王女士", "updated_at": int64(1_800_000_000_000), "aum": int64(15000050), "days_since_last_login": 2.5}),
		loadRow("C002", map[string]any{"age": nil}),
		loadRow("C003", map[string]any{"region": nil, "risk_tolerance": "C6"}),
	}
	good := pqFile(f, loadCols, rows, 2)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{})
	f.Add([]byte("PAR1\x00\x00\x00\x00PAR1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pr, err := export.NewParquetReader(bytes.NewReader(b), int64(len(b)), featurestest.LoadTime)
		if err != nil {
			return
		}
		// A few bytes of levels can stand for millions of rows; stop early.
		for row := 1; row <= 10000; row++ {
			_, _, err := pr.Next()
			if err == io.EOF {
				return
			}
			var re *export.RowError
			if errors.As(err, &re) {
				if re.Line != row || !errors.Is(err, export.ErrBadRow) {
					t.Fatalf("row %d: %v", row, err)
				}
				continue
			}
			if err != nil {
				if _, _, again := pr.Next(); again == nil {
					t.Fatalf("Next went on after %v", err)
				}
				return
			}
		}
	})
}

// BenchmarkReaders reads the same demo bank export as CSV and as Parquet.
func BenchmarkReaders(b *testing.B) {
	const n = 10_000
	bank, err := demobank.New(42, time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC), defaultCatalog(b))
	if err != nil {
		b.Fatal(err)
	}
	var csvIn bytes.Buffer
	if err := bank.WriteCSV(context.Background(), &csvIn, n); err != nil {
		b.Fatal(err)
	}
	rows := make([]map[string]any, n)
	for i := range rows {
		id, v := bank.Customer(i)
		rows[i] = exportRow(id, &v)
	}
	pq := pqFile(b, exportCols(), rows, 5000)
	readAll := func(b *testing.B, next func() (string, features.Vector, error)) {
		for {
			_, _, err := next()
			if err == io.EOF {
				return
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("csv", func(b *testing.B) {
		b.SetBytes(int64(csvIn.Len()))
		for b.Loop() {
			r, err := export.NewReader(bytes.NewReader(csvIn.Bytes()), featurestest.LoadTime)
			if err != nil {
				b.Fatal(err)
			}
			readAll(b, r.Next)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
	})
	b.Run("parquet", func(b *testing.B) {
		b.SetBytes(int64(len(pq)))
		for b.Loop() {
			r, err := export.NewParquetReader(bytes.NewReader(pq), int64(len(pq)), featurestest.LoadTime)
			if err != nil {
				b.Fatal(err)
			}
			readAll(b, r.Next)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
	})
}
