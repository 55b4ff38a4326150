package features

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

// ValidID reports whether s is a well-formed customer id: 1 to 64 ASCII
// letters, digits, '_' or '-'.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Header maps an export's columns to the schema.
type Header struct {
	columns []string
	field   []Field // per column: the schema field, or -1 for id, -2 salutation, -3 updated_at
}

const (
	colID Field = -1 - iota
	colSalutation
	colUpdatedAt
)

// ParseHeader checks an export's header: every required column present, no
// unknown or repeated column. Schema fields may be left out; their values
// are then missing.
func ParseHeader(cols []string) (*Header, error) {
	h := &Header{columns: make([]string, len(cols)), field: make([]Field, len(cols))}
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
			f, ok := Lookup(c)
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
func (h *Header) ParseRow(rec []string, now time.Time) (string, Vector, error) {
	v := Missing()
	v.UpdatedAt = now
	if len(rec) != len(h.columns) {
		return "", v, fmt.Errorf("%w: %d fields, want %d", ErrBadRow, len(rec), len(h.columns))
	}
	var id string
	for i, raw := range rec {
		col := h.columns[i]
		switch f := h.field[i]; f {
		case colID:
			if !ValidID(raw) {
				return "", v, fmt.Errorf("%w: %s: want 1 to 64 of A-Z a-z 0-9 _ -", ErrBadRow, col)
			}
			id = raw
		case colSalutation:
			if !utf8.ValidString(raw) || utf8.RuneCountInString(raw) > MaxSalutationRunes || len(raw) > 255 {
				return "", v, fmt.Errorf("%w: %s: at most %d characters of UTF-8", ErrBadRow, col, MaxSalutationRunes)
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
	for f := Field(0); f < NumFields; f++ {
		if specs[f].Required && v.Values[f] != v.Values[f] {
			return "", v, fmt.Errorf("%w: %s: required", ErrBadRow, specs[f].Name)
		}
	}
	return id, v, nil
}

var nan32 = float32(math.NaN())

// parseValue parses one cell. An empty cell is a missing value (NaN),
// except for risk_tolerance, where empty means never assessed (0).
func parseValue(f Field, raw string) (float32, error) {
	sp := &specs[f]
	raw = strings.TrimSpace(raw)
	if sp.Kind == Tolerance {
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
	case Flag:
		switch raw {
		case "0":
			return 0, nil
		case "1":
			return 1, nil
		}
		return 0, fmt.Errorf("%q: want 0 or 1", raw)
	case RegionKey:
		i := catalog.RegionIndex(raw)
		if i == 0 {
			return 0, fmt.Errorf("%q: unknown region code", raw)
		}
		return float32(i), nil
	case Date:
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
func FormatValue(f Field, x float32) string {
	sp := &specs[f]
	if sp.Kind == Tolerance {
		if x != x {
			return ""
		}
		return catalog.RiskTolerance(x).String()
	}
	if x != x {
		return ""
	}
	switch sp.Kind {
	case RegionKey:
		return catalog.RegionCode(int(x))
	case Date:
		return time.Unix(int64(x)*86400, 0).UTC().Format(time.DateOnly)
	default:
		return strconv.FormatFloat(float64(x), 'f', -1, 32)
	}
}

// CSVHeader returns the full export header: customer_id, salutation,
// updated_at and every schema field.
func CSVHeader() []string {
	return append([]string{ColumnCustomerID, ColumnSalutation, ColumnUpdatedAt}, Names()...)
}

// AppendCSVRecord appends the record for one customer, in CSVHeader order.
func AppendCSVRecord(dst []string, id string, v *Vector) []string {
	dst = append(dst, id, v.Salutation, v.UpdatedAt.UTC().Format(time.RFC3339))
	for f := Field(0); f < NumFields; f++ {
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
func (r *Reader) Next() (string, Vector, error) {
	rec, err := r.r.Read()
	if err != nil {
		if err == io.EOF {
			return "", Vector{}, io.EOF
		}
		// Only a parse error is the row's fault. FieldPos must not be
		// asked here: after an error there may be no field to ask about.
		var pe *csv.ParseError
		if !errors.As(err, &pe) {
			return "", Vector{}, fmt.Errorf("read: %w", err)
		}
		return "", Vector{}, &RowError{Line: pe.Line, Err: fmt.Errorf("%w: %v", ErrBadRow, err)}
	}
	line, _ := r.r.FieldPos(0)
	id, v, err := r.h.ParseRow(rec, r.now)
	if err != nil {
		return "", Vector{}, &RowError{Line: line, Err: err}
	}
	return id, v, nil
}
