package export_test

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/export"
	"github.com/directops/nbp/features/featurestest"
)

func TestParseHeader(t *testing.T) {
	without := func(cols []string, drop string) []string {
		return slices.DeleteFunc(slices.Clone(cols), func(c string) bool { return c == drop })
	}
	required := export.RequiredColumns()
	tests := []struct {
		name string
		cols []string
		want []string // substrings of the error; none when the header is good
	}{
		{name: "full export", cols: export.CSVHeader()},
		{name: "required columns only", cols: required},
		{name: "byte order mark", cols: append([]string{"\ufeff" + required[0]}, required[1:]...)},
		{name: "spaces around names", cols: append([]string{" customer_id "}, required[1:]...)},
		{name: "unknown column", cols: append(slices.Clone(required), "shoe_size"), want: []string{`unknown column "shoe_size"`}},
		{name: "repeated column", cols: append(slices.Clone(required), "age"), want: []string{`column "age" repeated`}},
		{name: "repeated id", cols: append(slices.Clone(required), "customer_id"), want: []string{`column "customer_id" repeated`}},
		{name: "empty column name", cols: append(slices.Clone(required), ""), want: []string{`unknown column ""`}},
		{name: "every problem at once", cols: append(without(required, "age"), "shoe_size", "kyc_level"),
			want: []string{`required column "age" missing`, `unknown column "shoe_size"`, `column "kyc_level" repeated`}},
	}
	for _, c := range required {
		tests = append(tests, struct {
			name string
			cols []string
			want []string
		}{name: "missing " + c, cols: without(export.CSVHeader(), c), want: []string{fmt.Sprintf("required column %q missing", c)}})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := export.ParseHeader(tc.cols)
			if len(tc.want) == 0 {
				if err != nil || h == nil {
					t.Fatalf("ParseHeader = %v, %v; want a header", h, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseHeader succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q: %v", w, err)
				}
			}
		})
	}
}

// rowHeader is the header of the row tests: the required columns, in
// another order, and a few optional ones.
var rowHeader = []string{
	"customer_id", "salutation", "updated_at", "age", "kyc_level", "region", "aum", "holds_gold",
	"risk_tolerance", "risk_assessed_until", "marketing_consent", "personalisation_opt_out",
}

func goodRow() map[string]string {
	return map[string]string{
		"customer_id": "C000000042", "salutation": "王女士", "updated_at": "2026-11-26T20:00:00+08:00",
		"age": "45", "kyc_level": "3", "region": "GD", "aum": "152000.25", "holds_gold": "0",
		"risk_tolerance": "C3", "risk_assessed_until": "2027-03-31",
		"marketing_consent": "1", "personalisation_opt_out": "0",
	}
}

func record(row map[string]string) []string {
	rec := make([]string, len(rowHeader))
	for i, c := range rowHeader {
		rec[i] = row[c]
	}
	return rec
}

func TestParseRow(t *testing.T) {
	h, err := export.ParseHeader(rowHeader)
	if err != nil {
		t.Fatal(err)
	}
	want := features.Missing()
	want.UpdatedAt = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	want.Salutation = "王女士"
	want.Values[features.Age] = 45
	want.Values[features.KYCLevel] = 3
	want.Values[features.Region] = float32(catalog.RegionIndex("GD"))
	want.Values[features.AUM] = 152000.25
	want.Values[features.HoldsGold] = 0
	want.Values[features.RiskTolerance] = 3
	want.Values[features.RiskAssessedUntil] = featurestest.Day(2027, 3, 31)
	want.Values[features.MarketingConsent] = 1
	want.Values[features.PersonalisationOptOut] = 0

	good := []struct {
		name string
		edit map[string]string
		want func(v *features.Vector)
	}{
		{name: "every cell", want: func(*features.Vector) {}},
		{name: "empty optional cells are missing",
			edit: map[string]string{"salutation": "", "region": "", "aum": "", "holds_gold": "", "risk_assessed_until": ""},
			want: func(v *features.Vector) {
				v.Salutation = ""
				v.Values[features.Region], v.Values[features.AUM], v.Values[features.HoldsGold], v.Values[features.RiskAssessedUntil] = nan, nan, nan, nan
			}},
		{name: "empty risk tolerance is never assessed", edit: map[string]string{"risk_tolerance": ""},
			want: func(v *features.Vector) { v.Values[features.RiskTolerance] = 0 }},
		{name: "no updated_at is the load time", edit: map[string]string{"updated_at": ""},
			want: func(v *features.Vector) { v.UpdatedAt = featurestest.LoadTime }},
		{name: "spaces around numbers", edit: map[string]string{"age": " 45 ", "aum": "\t152000.25"}, want: func(*features.Vector) {}},
		{name: "bounds", edit: map[string]string{"age": "0", "kyc_level": "1", "aum": "1e12"},
			want: func(v *features.Vector) {
				v.Values[features.Age], v.Values[features.KYCLevel], v.Values[features.AUM] = 0, 1, 1e12
			}},
		{name: "C5, the last region", edit: map[string]string{"risk_tolerance": "C5", "region": "XJ"},
			want: func(v *features.Vector) {
				v.Values[features.RiskTolerance], v.Values[features.Region] = 5, float32(catalog.NumRegions)
			}},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			row := goodRow()
			for k, x := range tc.edit {
				row[k] = x
			}
			w := want
			tc.want(&w)
			id, got, err := h.ParseRow(record(row), featurestest.LoadTime)
			if err != nil {
				t.Fatalf("ParseRow: %v", err)
			}
			if id != "C000000042" {
				t.Errorf("id %q", id)
			}
			if diff := cmp.Diff(w, got, featurestest.EquateVectors); diff != "" {
				t.Errorf("ParseRow (-want +got):\n%s", diff)
			}
		})
	}

	bad := []struct {
		column, value string
	}{
		{"customer_id", ""},
		{"customer_id", "C 42"},
		{"customer_id", "客户42"},
		{"customer_id", strings.Repeat("C", 65)},
		{"salutation", "欧阳娜娜娜女士"},
		{"salutation", "王\xff"},
		{"updated_at", "2026-11-26"},
		{"marketing_consent", "2"},
		{"marketing_consent", "yes"},
		{"holds_gold", "0.5"},
		{"age", "131"},
		{"age", "-1"},
		{"age", "forty"},
		{"age", "NaN"},
		{"kyc_level", "4"},
		{"kyc_level", "0"},
		{"aum", "Inf"},
		{"aum", "+Inf"},
		{"aum", "-Inf"},
		{"aum", "1e400"},
		{"aum", "1.1e12"},
		{"region", "XX"},
		{"region", "gd"},
		{"risk_tolerance", "C6"},
		{"risk_tolerance", "C0"},
		{"risk_tolerance", "3"},
		{"risk_assessed_until", "2027-02-30"},
		{"risk_assessed_until", "2027/03/31"},
		{"risk_assessed_until", "2027-03-31T00:00:00Z"},
		{"age", ""},
		{"kyc_level", ""},
		{"marketing_consent", ""},
		{"personalisation_opt_out", ""},
	}
	for _, tc := range bad {
		t.Run(fmt.Sprintf("%s=%q", tc.column, tc.value), func(t *testing.T) {
			row := goodRow()
			row[tc.column] = tc.value
			_, _, err := h.ParseRow(record(row), featurestest.LoadTime)
			if !errors.Is(err, export.ErrBadRow) {
				t.Fatalf("ParseRow error %v, want ErrBadRow", err)
			}
			if !strings.Contains(err.Error(), tc.column) {
				t.Errorf("error %q does not name the column %s", err, tc.column)
			}
		})
	}

	t.Run("field count", func(t *testing.T) {
		rec := record(goodRow())
		for _, r := range [][]string{rec[:len(rec)-1], append(rec, "extra"), nil} {
			if _, _, err := h.ParseRow(r, featurestest.LoadTime); !errors.Is(err, export.ErrBadRow) {
				t.Errorf("ParseRow(%d fields) error %v, want ErrBadRow", len(r), err)
			}
		}
	})
}

func TestParseRowMissingRequiredColumnValue(t *testing.T) {
	// A header may leave out optional fields; a required field's cell is
	// checked whichever columns are present.
	h, err := export.ParseHeader(export.RequiredColumns())
	if err != nil {
		t.Fatal(err)
	}
	_, v, err := h.ParseRow([]string{"C1", "30", "2", "", "", "0", "0"}, featurestest.LoadTime)
	if err != nil {
		t.Fatal(err)
	}
	for f := features.Field(0); f < features.NumFields; f++ {
		switch f {
		case features.Age, features.KYCLevel, features.RiskTolerance, features.MarketingConsent, features.PersonalisationOptOut:
			if x := v.Values[f]; x != x {
				t.Errorf("%s missing", f)
			}
		default:
			if x := v.Values[f]; x == x {
				t.Errorf("%s = %v, want missing", f, x)
			}
		}
	}
}

type readResult struct {
	Line int    // of a bad row, 0 for a good one
	ID   string // of a good row
}

func readAll(t *testing.T, r *export.Reader) []readResult {
	t.Helper()
	var out []readResult
	for i := 0; i < 1000; i++ {
		id, _, err := r.Next()
		if err == io.EOF {
			return out
		}
		var re *export.RowError
		switch {
		case errors.As(err, &re):
			if !errors.Is(err, export.ErrBadRow) {
				t.Errorf("row error %v does not wrap ErrBadRow", err)
			}
			if !strings.HasPrefix(err.Error(), fmt.Sprintf("line %d: ", re.Line)) {
				t.Errorf("row error %q does not start with its line", err)
			}
			out = append(out, readResult{Line: re.Line})
		case err != nil:
			t.Fatalf("Next: %v", err)
		default:
			out = append(out, readResult{ID: id})
		}
	}
	t.Fatal("Next did not reach the end")
	return nil
}

func TestReaderLineNumbers(t *testing.T) {
	const head = "customer_id,salutation,age,kyc_level,risk_tolerance,risk_assessed_until,marketing_consent,personalisation_opt_out\n"
	tests := []struct {
		name string
		in   string
		want []readResult
	}{
		{
			name: "bad rows are reported and skipped",
			in: head +
				"C1,王女士,45,3,C3,2027-03-31,1,0\n" + // line 2
				"C2,,45,3,C3,2027-03-31,1\n" + // line 3: one field short
				"C3,李\"先生,45,3,C3,2027-03-31,1,0\n" + // line 4: bare quote
				"C4,,45,3,C6,,1,0\n" + // line 5: bad tolerance
				"C5,,45,3,,,1,0\n", // line 6
			want: []readResult{{ID: "C1"}, {Line: 3}, {Line: 4}, {Line: 5}, {ID: "C5"}},
		},
		{
			name: "a quoted field over two lines",
			in: head +
				"C1,\"王\n女士\",45,3,C3,2027-03-31,1,0\n" + // lines 2-3
				"C2,,45,3,,,1,x\n" + // line 4: bad flag
				"\n" + // line 5: empty, skipped
				"C3,\"张\"\"先生\",45,3,,,1,0\n", // line 6: escaped quote
			want: []readResult{{ID: "C1"}, {Line: 4}, {ID: "C3"}},
		},
		{
			name: "an extraneous quote",
			in: head +
				"C1,\"王\"女士,45,3,,,1,0\n" + // line 2
				"C2,,45,3,,,1,0\n",
			want: []readResult{{Line: 2}, {ID: "C2"}},
		},
		{
			name: "CRLF and a byte order mark",
			in:   "\ufeff" + strings.ReplaceAll(head+"C1,,45,3,,,1,0\nC2,,200,3,,,1,0\nC3,,45,3,,,1,0\n", "\n", "\r\n"),
			want: []readResult{{ID: "C1"}, {Line: 3}, {ID: "C3"}},
		},
		{
			name: "no final newline",
			in:   head + "C1,,45,3,,,1,0",
			want: []readResult{{ID: "C1"}},
		},
		{
			name: "an unclosed quote at the end",
			in:   head + "C1,,45,3,,,1,0\n\"C2,,45", // line 3
			want: []readResult{{ID: "C1"}, {Line: 3}},
		},
		{
			name: "an unclosed quote at the end of the first row",
			in:   head + "\"C1",
			want: []readResult{{Line: 2}},
		},
		{
			name: "header only",
			in:   head,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := export.NewReader(strings.NewReader(tc.in), featurestest.LoadTime)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, readAll(t, r)); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewReaderHeaderErrors(t *testing.T) {
	tests := map[string]string{
		"empty file":     "",
		"unknown column": "customer_id,age,kyc_level,risk_tolerance,risk_assessed_until,marketing_consent,personalisation_opt_out,shoe_size\n",
		"missing column": "customer_id,age\nC1,45\n",
		"bare quote":     "customer_id,a\"ge\n",
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if r, err := export.NewReader(strings.NewReader(in), featurestest.LoadTime); err == nil || r != nil {
				t.Errorf("NewReader = %v, %v; want an error", r, err)
			}
		})
	}
}

func TestReaderReadError(t *testing.T) {
	// A failing input is not a bad row: the reader must say so, or a
	// loader that skips bad rows would loop for ever.
	disk := errors.New("disk gone")
	in := io.MultiReader(strings.NewReader(strings.Join(export.RequiredColumns(), ",")+"\nC1,45,3,,,1,0\n"), iotest.ErrReader(disk))
	r, err := export.NewReader(in, featurestest.LoadTime)
	if err != nil {
		t.Fatal(err)
	}
	if id, _, err := r.Next(); err != nil || id != "C1" {
		t.Fatalf("Next = %q, %v", id, err)
	}
	_, _, err = r.Next()
	var re *export.RowError
	if !errors.Is(err, disk) || errors.As(err, &re) || errors.Is(err, export.ErrBadRow) {
		t.Errorf("Next error %v, want the read error, not a bad row", err)
	}
}

// randomVector draws a vector within the schema: each field of its kind
// and range, optional ones sometimes missing.
func randomVector(r *rand.Rand) features.Vector {
	salutations := []string{"", "王女士", "欧阳娜娜女士", "Ms Li", "李,先生", `张"先生`, "赵 先生", "王\n女士"}
	v := features.Missing()
	v.UpdatedAt = time.Unix(1_700_000_000+r.Int64N(100_000_000), 0)
	v.Salutation = salutations[r.IntN(len(salutations))]
	for f := features.Field(0); f < features.NumFields; f++ {
		sp := f.Spec()
		if !sp.Required && sp.Kind != features.Tolerance && r.IntN(8) == 0 {
			continue // missing
		}
		var x float32
		switch sp.Kind {
		case features.Flag:
			x = float32(r.IntN(2))
		case features.RegionKey:
			x = float32(1 + r.IntN(catalog.NumRegions))
		case features.Tolerance:
			x = float32(r.IntN(6))
		case features.Date:
			x = featurestest.Day(2020, 1, 1) + float32(r.IntN(4000))
		default:
			switch r.IntN(4) {
			case 0:
				x = float32(math.Round(sp.Min + r.Float64()*(sp.Max-sp.Min))) // whole
			case 1:
				x = float32(math.Round((sp.Min+r.Float64()*(sp.Max-sp.Min))*100) / 100) // cents
			default:
				x = float32(sp.Min + r.Float64()*(sp.Max-sp.Min)) // any float32 in range
				if float64(x) > sp.Max {
					x = float32(sp.Min)
				}
			}
		}
		v.Values[f] = x
	}
	return v
}

func TestCSVRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 27))
	ids := make([]string, 500)
	vs := make([]features.Vector, len(ids))
	for i := range ids {
		ids[i] = fmt.Sprintf("C%06d", i)
		vs[i] = randomVector(r)
	}
	// Values whose shortest decimal form is read back wrong when it is
	// parsed as float64 and then rounded to float32.
	vs[0].Values[features.AUM] = 7.038531e-26
	vs[1].Values[features.AUM] = float32(1e12)

	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.Write(export.CSVHeader()); err != nil {
		t.Fatal(err)
	}
	var rec []string
	for i := range ids {
		rec = export.AppendCSVRecord(rec[:0], ids[i], &vs[i])
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		t.Fatal(err)
	}

	rd, err := export.NewReader(&buf, featurestest.LoadTime)
	if err != nil {
		t.Fatal(err)
	}
	var gotIDs []string
	var got []features.Vector
	for {
		id, v, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		gotIDs = append(gotIDs, id)
		got = append(got, v)
	}
	if diff := cmp.Diff(ids, gotIDs); diff != "" {
		t.Fatalf("ids (-want +got):\n%s", diff)
	}
	for i := range vs {
		if diff := cmp.Diff(vs[i], got[i], featurestest.EquateVectors); diff != "" {
			t.Errorf("customer %s (-written +read):\n%s", ids[i], diff)
		}
	}
}

func TestFormatValue(t *testing.T) {
	tests := []struct {
		f    features.Field
		x    float32
		want string
	}{
		{features.Age, 45, "45"},
		{features.AUM, 152000.25, "152000.25"},
		{features.AUM, nan, ""},
		{features.Region, 19, "GD"},
		{features.Region, 0, ""},
		{features.Region, 99, ""},
		{features.RiskTolerance, 0, ""},
		{features.RiskTolerance, 3, "C3"},
		{features.RiskTolerance, nan, ""},
		{features.RiskAssessedUntil, featurestest.Day(2027, 3, 31), "2027-03-31"},
		{features.RiskAssessedUntil, nan, ""},
		{features.MarketingConsent, 1, "1"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s=%v", tc.f, tc.x), func(t *testing.T) {
			if got := export.FormatValue(tc.f, tc.x); got != tc.want {
				t.Errorf("FormatValue = %q, want %q", got, tc.want)
			}
		})
	}
}

// FuzzParseRow: a row never panics the parser; a row it accepts is
// well-formed, and writing it out and reading it back gives it again.
func FuzzParseRow(f *testing.F) {
	h, err := export.ParseHeader(export.CSVHeader())
	if err != nil {
		f.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 8; i++ {
		v := randomVector(r)
		f.Add(strings.Join(export.AppendCSVRecord(nil, fmt.Sprintf("C%d", i), &v), "|"))
	}
	f.Add("C1|王女士||45|||||||||||||||||||||||||||||||C3|2027-03-31|1|0|")
	f.Add("C1||2026-11-26T20:00:00.123+08:00|NaN|1e400|0x1p-2|1_000|+Inf|-0")
	f.Fuzz(func(t *testing.T, line string) {
		rec := strings.Split(line, "|")
		id, v, err := h.ParseRow(rec, featurestest.LoadTime)
		if err != nil {
			if !errors.Is(err, export.ErrBadRow) {
				t.Fatalf("error %v does not wrap ErrBadRow", err)
			}
			return
		}
		if !features.ValidID(id) {
			t.Fatalf("accepted id %q", id)
		}
		if !utf8.ValidString(v.Salutation) || utf8.RuneCountInString(v.Salutation) > features.MaxSalutationRunes {
			t.Fatalf("accepted salutation %q", v.Salutation)
		}
		for f := features.Field(0); f < features.NumFields; f++ {
			sp, x := f.Spec(), v.Values[f]
			if x != x {
				if sp.Required {
					t.Fatalf("required %s missing", f)
				}
				continue
			}
			if sp.Kind == features.Number && (float64(x) < sp.Min || float64(x) > sp.Max) {
				t.Fatalf("%s = %v outside %v..%v", f, x, sp.Min, sp.Max)
			}
		}
		if y := v.UpdatedAt.UTC().Year(); y < 1 || y > 9999 {
			return // RFC 3339 cannot write it back
		}
		id2, v2, err := h.ParseRow(export.AppendCSVRecord(nil, id, &v), featurestest.LoadTime)
		if err != nil {
			t.Fatalf("the written row does not parse: %v", err)
		}
		v.UpdatedAt = v.UpdatedAt.Truncate(time.Second)
		if id2 != id {
			t.Fatalf("id %q read back as %q", id, id2)
		}
		if diff := cmp.Diff(v, v2, featurestest.EquateVectors); diff != "" {
			t.Fatalf("row read back differs (-first +second):\n%s", diff)
		}
	})
}

// FuzzReader: any input is read to its end without a panic, bad rows are
// reported with increasing line numbers, and the reader always gets on.
func FuzzReader(f *testing.F) {
	head := strings.Join(export.RequiredColumns(), ",") + "\n"
	f.Add([]byte(head + "C1,45,3,C3,2027-03-31,1,0\n"))
	f.Add([]byte(head + "C1,45,3,,,1,0\nC2,\"4\n5\",3,,,1,0\nC3,4\"5,3,,,1,0\n"))
	f.Add([]byte("\ufeff" + head + "C1,45,3\r\n\r\n\"C2"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := export.NewReader(bytes.NewReader(b), featurestest.LoadTime)
		if err != nil {
			return
		}
		last := 1
		for i := 0; ; i++ {
			if i > len(b)+1 {
				t.Fatalf("more rows than bytes: the reader does not get on")
			}
			id, _, err := r.Next()
			if err == io.EOF {
				return
			}
			var re *export.RowError
			switch {
			case errors.As(err, &re):
				if !errors.Is(err, export.ErrBadRow) {
					t.Fatalf("row error %v does not wrap ErrBadRow", err)
				}
				if re.Line < last {
					t.Fatalf("bad row at line %d after line %d", re.Line, last)
				}
				last = re.Line
			case err != nil:
				t.Fatalf("Next: %v", err)
			case !features.ValidID(id):
				t.Fatalf("accepted id %q", id)
			}
		}
	})
}
