package features_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/export"
)

func TestSchema(t *testing.T) {
	names := features.Names()
	if len(names) != int(features.NumFields) {
		t.Fatalf("%d names for %d fields", len(names), features.NumFields)
	}
	seen := map[string]bool{}
	for i, n := range names {
		f := features.Field(i)
		if n == "" || seen[n] {
			t.Errorf("field %d: empty or repeated name %q", i, n)
		}
		seen[n] = true
		if f.String() != n || f.Spec().Name != n {
			t.Errorf("field %d: String %q, Spec().Name %q, want %q", i, f, f.Spec().Name, n)
		}
		if got, ok := features.Lookup(n); !ok || got != f {
			t.Errorf("Lookup(%q) = %v, %v", n, got, ok)
		}
		if sp := f.Spec(); sp.Kind == features.Number && !(sp.Min < sp.Max) {
			t.Errorf("%s: range %v..%v", n, sp.Min, sp.Max)
		}
		switch n {
		case export.ColumnCustomerID, export.ColumnSalutation, export.ColumnUpdatedAt:
			t.Errorf("field %q shadows a CSV column", n)
		}
	}
	for _, c := range export.RequiredColumns()[1:] {
		f, ok := features.Lookup(c)
		if !ok {
			t.Errorf("required column %q is no field", c)
			continue
		}
		if !f.Spec().Required && f != features.RiskTolerance && f != features.RiskAssessedUntil {
			t.Errorf("required column %q is an optional field", c)
		}
	}
	if _, ok := features.Lookup("shoe_size"); ok {
		t.Error("Lookup(shoe_size) found a field")
	}
	if got := features.NumFields.String(); got != fmt.Sprintf("field(%d)", int(features.NumFields)) {
		t.Errorf("NumFields.String() = %q", got)
	}
	if got := features.Field(-1).String(); got != "field(-1)" {
		t.Errorf("Field(-1).String() = %q", got)
	}
	if features.MaxSalutationRunes != catalog.MaxSalutationRunes {
		t.Errorf("MaxSalutationRunes %d, catalog's %d", features.MaxSalutationRunes, catalog.MaxSalutationRunes)
	}
}

func TestVectorAccessors(t *testing.T) {
	v := sampleVector()
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"Get", v.Get(features.Age), 45.0},
		{"Flag on", v.Flag(features.MarketingConsent), true},
		{"Flag off", v.Flag(features.PersonalisationOptOut), false},
		{"Flag missing", v.Flag(features.WecomAdded), false},
		{"RegionCode", v.RegionCode(), "GD"},
		{"Tolerance", v.Tolerance(), catalog.RiskTolerance(3)},
		{"AssessedUntil", v.AssessedUntil(), time.Date(2027, 4, 1, 0, 0, 0, 0, cst)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}

	m := features.Missing()
	if !math.IsNaN(m.Get(features.Age)) || m.RegionCode() != "" || m.Tolerance() != 0 || !m.AssessedUntil().IsZero() || m.Salutation != "" {
		t.Errorf("Missing: age %v, region %q, tolerance %v, assessed until %v", m.Get(features.Age), m.RegionCode(), m.Tolerance(), m.AssessedUntil())
	}
	for f := features.Field(0); f < features.NumFields; f++ {
		if x := m.Values[f]; x == x {
			t.Errorf("Missing: %s = %v", f, x)
		}
	}
}

func TestValidID(t *testing.T) {
	tests := map[string]bool{
		"C000000042": true, "a-b_C9": true, "x": true,
		"": false, "C 1": false, "C{1}": false, "客户": false, "C\n": false,
	}
	tests[string(make([]byte, 64))] = false
	long := make([]byte, 64)
	for i := range long {
		long[i] = 'C'
	}
	tests[string(long)] = true
	tests[string(long)+"C"] = false
	for id, want := range tests {
		if got := features.ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}
