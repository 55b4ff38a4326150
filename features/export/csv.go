// Package export reads the data warehouse's customer exports (CSV and
// Parquet, in the feature schema's columns) into feature vectors, and loads
// them into the store: every row checked, a bad one rejected whole and
// reported, never half-written. It writes the CSV form too (for the demo
// bank).
package export

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
)

// The CSV columns besides the schema fields.
const (
	ColumnCustomerID = "customer_id"
	ColumnSalutation = "salutation" // optional
	ColumnUpdatedAt  = "updated_at" // optional, RFC 3339; the load time when absent
)

// requiredColumns must be in every export's header.
var requiredColumns = [...]string{
	ColumnCustomerID, "age", "kyc_level", "risk_tolerance", "risk_assessed_until",
	"marketing_consent", "personalisation_opt_out",
}

// RequiredColumns returns the columns every export's header must have: a
// copy.
func RequiredColumns() []string { return append([]string(nil), requiredColumns[:]...) }

// ErrBadRow is wrapped by every row error of a CSV export.
var ErrBadRow = errors.New("bad row")

// Header maps an export's columns to the schema.
type Header struct {
	columns []string
	field   []features.Field // per column: the schema field, or -1 for id, -2 salutation, -3 updated_at
}

const (
	colID features.Field = -1 - iota
	colSalutation
	colUpdatedAt
)

// ParseHeader checks an export's header: every required column present, no
// unknown or repeated column. Schema fields may be left out; their values
// are then missing.
func ParseHeader(cols []string) (*Header, error) {
	h := &Header{columns: make([]string, len(cols)), field: make([]features.Field, len(cols))}
	seen := make(map[string]bool, len(cols))
	var probs []string
	for i, c := range cols {
		c = strings.TrimSpace(strings.TrimPrefix(c, "\ufeff"))
		h.columns[i] = c
		if seen[c] {
			probs = append(probs, fmt.Sprintf("column %q repeated", c))
		}
		seen[c] = true
		switch c {
		case ColumnCustomerID:
			h.field[i] = colID
		case ColumnSalutation:
			h.field[i] = colSalutation
		case ColumnUpdatedAt:
			h.field[i] = colUpdatedAt
		default:
			f, ok := features.Lookup(c)
			if !ok {
				probs = append(probs, fmt.Sprintf("unknown column %q", c))
			}
			h.field[i] = f
		}
	}
	for _, c := range requiredColumns {
		if !seen[c] {
			probs = append(probs, fmt.Sprintf("required column %q missing", c))
		}
	}
	if len(probs) > 0 {
		return nil, fmt.Errorf("header: %s", strings.Join(probs, "; "))
	}
	return h, nil
}

// ParseRow reads one record into a vector. now is the updated-at time used
// when the export has no updated_at column. The error wraps ErrBadRow and
// names the column at fault.
func (h *Header) ParseRow(rec []string, now time.Time) (string, features.Vector, error) {
	v := features.Missing()
	v.UpdatedAt = now
	if len(rec) != len(h.columns) {
		return "", v, fmt.Errorf("%w: %d fields, want %d", ErrBadRow, len(rec), len(h.columns))
	}
	var id string
	for i, raw := range rec {
		col := h.columns[i]
		switch f := h.field[i]; f {
		case colID:
			if !features.ValidID(raw) {
				return "", v, fmt.Errorf("%w: %s: want 1 to 64 of A-Z a-z 0-9 _ -", ErrBadRow, col)
			}
			id = raw
		case colSalutation:
			if !utf8.ValidString(raw) || utf8.RuneCountInString(raw) > features.MaxSalutationRunes || len(raw) > 255 {
				return "", v, fmt.Errorf("%w: %s: at most %d characters of UTF-8", ErrBadRow, col, features.MaxSalutationRunes)
			}
			v.Salutation = raw
		case colUpdatedAt:
			if raw == "" {
				continue
			}
			t, err := time.Parse(time.RFC3339, raw)
			if err != nil {
				return "", v, fmt.Errorf("%w: %s: want RFC 3339", ErrBadRow, col)
			}
			v.UpdatedAt = t
		default:
			x, err := parseValue(f, raw)
			if err != nil {
				return "", v, fmt.Errorf("%w: %s: %v", ErrBadRow, col, err)
			}
			v.Values[f] = x
		}
	}
	for f := features.Field(0); f < features.NumFields; f++ {
		if f.Spec().Required && v.Values[f] != v.Values[f] {
			return "", v, fmt.Errorf("%w: %s: required", ErrBadRow, f.Spec().Name)
		}
	}
	return id, v, nil
}

var nan32 = float32(math.NaN())

// parseValue parses one cell. An empty cell is a missing value (NaN),
// except for risk_tolerance, where empty means never assessed (0).
func parseValue(f features.Field, raw string) (float32, error) {
	sp := f.Spec()
	raw = strings.TrimSpace(raw)
	if sp.Kind == features.Tolerance {
		t, err := catalog.ParseRiskTolerance(raw)
		if err != nil {
			return 0, err
		}
		return float32(t), nil
	}
	if raw == "" {
		return nan32, nil
	}
	switch sp.Kind {
	case features.Flag:
		switch raw {
		case "0":
			return 0, nil
		case "1":
			return 1, nil
		}
		return 0, fmt.Errorf("%q: want 0 or 1", raw)
	case features.RegionKey:
		i := catalog.RegionIndex(raw)
		if i == 0 {
			return 0, fmt.Errorf("%q: unknown region code", raw)
		}
		return float32(i), nil
	case features.Date:
		t, err := time.Parse(time.DateOnly, raw)
		if err != nil {
			return 0, fmt.Errorf("%q: want YYYY-MM-DD", raw)
		}
		return float32(t.Unix() / 86400), nil
	default:
		// Parse to float32 directly: rounding to float64 first and then
		// to float32 can miss the value FormatValue wrote.
		x, err := strconv.ParseFloat(raw, 32)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, fmt.Errorf("%q: not a number", raw)
		}
		if x < sp.Min || x > sp.Max {
			return 0, fmt.Errorf("%v outside %v..%v", x, sp.Min, sp.Max)
		}
		return float32(x), nil
	}
}

// FormatValue writes a value as the export does (the inverse of parsing).
func FormatValue(f features.Field, x float32) string {
	sp := f.Spec()
	if sp.Kind == features.Tolerance {
		if x != x {
			return ""
		}
		return catalog.RiskTolerance(x).String()
	}
	if x != x {
		return ""
	}
	switch sp.Kind {
	case features.RegionKey:
		return catalog.RegionCode(int(x))
	case features.Date:
		return time.Unix(int64(x)*86400, 0).UTC().Format(time.DateOnly)
	default:
		return strconv.FormatFloat(float64(x), 'f', -1, 32)
	}
}

// CSVHeader returns the full export header: customer_id, salutation,
// updated_at and every schema field.
func CSVHeader() []string {
	return append([]string{ColumnCustomerID, ColumnSalutation, ColumnUpdatedAt}, features.Names()...)
}

// AppendCSVRecord appends the record for one customer, in CSVHeader order.
func AppendCSVRecord(dst []string, id string, v *features.Vector) []string {
	dst = append(dst, id, v.Salutation, v.UpdatedAt.UTC().Format(time.RFC3339))
	for f := features.Field(0); f < features.NumFields; f++ {
		dst = append(dst, FormatValue(f, v.Values[f]))
	}
	return dst
}

// RowError is a bad row of an export, with its line number.
type RowError struct {
	Line int
	Err  error
}

func (e *RowError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *RowError) Unwrap() error { return e.Err }

// Reader streams the vectors of a CSV export.
type Reader struct {
	r   *csv.Reader
	h   *Header
	now time.Time
}

// NewReader reads and checks the header of a CSV export.
func NewReader(r io.Reader, now time.Time) (*Reader, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("header: empty file")
		}
		return nil, fmt.Errorf("header: %w", err)
	}
	h, err := ParseHeader(head)
	if err != nil {
		return nil, err
	}
	return &Reader{r: cr, h: h, now: now}, nil
}

// Next returns the next customer. A bad row is returned as a *RowError
// (wrapping ErrBadRow); the reader can go on after it. It returns io.EOF at
// the end, and any other error when the input itself cannot be read (the
// reader cannot go on after that).
func (r *Reader) Next() (string, features.Vector, error) {
	rec, err := r.r.Read()
	if err != nil {
		if err == io.EOF {
			return "", features.Vector{}, io.EOF
		}
		// Only a parse error is the row's fault. FieldPos must not be
		// asked here: after an error there may be no field to ask about.
		var pe *csv.ParseError
		if !errors.As(err, &pe) {
			return "", features.Vector{}, fmt.Errorf("read: %w", err)
		}
		return "", features.Vector{}, &RowError{Line: pe.Line, Err: fmt.Errorf("%w: %v", ErrBadRow, err)}
	}
	line, _ := r.r.FieldPos(0)
	id, v, err := r.h.ParseRow(rec, r.now)
	if err != nil {
		return "", features.Vector{}, &RowError{Line: line, Err: err}
	}
	return id, v, nil
}
