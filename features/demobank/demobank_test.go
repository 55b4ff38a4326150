package demobank_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/demobank"
	"github.com/directops/nbp/features/export"
)

var asOf = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

func newBank(t testing.TB, seed uint64) (*demobank.Bank, *catalog.Catalog) {
	t.Helper()
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	b, err := demobank.New(seed, asOf, cat)
	if err != nil {
		t.Fatal(err)
	}
	return b, cat
}

var equateNaNs = cmpopts.EquateNaNs()

func TestDeterminism(t *testing.T) {
	a, _ := newBank(t, 42)
	b, _ := newBank(t, 42)
	other, _ := newBank(t, 43)

	const n = 200
	differ := 0
	for i := 0; i < n; i++ {
		idA, va := a.Customer(i)
		idB, vb := b.Customer(i)
		if idA != idB || idA != demobank.ID(i) {
			t.Fatalf("customer %d: ids %q and %q, want %q", i, idA, idB, demobank.ID(i))
		}
		if diff := cmp.Diff(va, vb, equateNaNs); diff != "" {
			t.Fatalf("customer %d differs between two banks of one seed (-a +b):\n%s", i, diff)
		}
		if _, vo := other.Customer(i); !cmp.Equal(va, vo, equateNaNs) {
			differ++
		}
		if diff := cmp.Diff(a.Outcomes(i, idA, &va, nil), b.Outcomes(i, idB, &vb, nil)); diff != "" {
			t.Fatalf("customer %d: outcomes differ (-a +b):\n%s", i, diff)
		}
	}
	if differ < n*95/100 {
		t.Errorf("only %d of %d customers differ between seeds 42 and 43", differ, n)
	}

	// Customer i is the same whatever came before it: asked alone, after
	// others, or as part of an export of any size.
	_, alone := a.Customer(150)
	for i := 0; i < 150; i++ {
		a.Customer(i)
	}
	_, after := a.Customer(150)
	if diff := cmp.Diff(alone, after, equateNaNs); diff != "" {
		t.Errorf("customer 150 depends on what was generated before (-alone +after):\n%s", diff)
	}
	var small, large bytes.Buffer
	if err := a.WriteCSV(context.Background(), &small, 10); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteCSV(context.Background(), &large, 100); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(large.Bytes(), small.Bytes()) {
		t.Error("the export of 10 customers is not the start of the export of 100")
	}
	if got := strings.Count(large.String(), "\n"); got != 101 {
		t.Errorf("export of 100 customers has %d lines, want 101", got)
	}
}

func TestID(t *testing.T) {
	for i, want := range map[int]string{0: "C000000000", 42: "C000000042", 123456789: "C123456789"} {
		if got := demobank.ID(i); got != want || !features.ValidID(got) {
			t.Errorf("ID(%d) = %q, want %q", i, got, want)
		}
	}
}

// TestPopulation checks the distributions the demo and the model rely on,
// over 20,000 customers, and that the export reads back as written.
func TestPopulation(t *testing.T) {
	const n = 20_000
	bank, cat := newBank(t, 7)
	var (
		unassessed, consent, optOut, salutations, lapsed int
		minAge, maxAge                                   = math.Inf(1), math.Inf(-1)
		ages                                             = map[float32]bool{}
		vs                                               = make([]features.Vector, n)
	)
	for i := 0; i < n; i++ {
		_, v := bank.Customer(i)
		vs[i] = v
		age := v.Get(features.Age)
		if age != math.Round(age) {
			t.Fatalf("customer %d: age %v", i, age)
		}
		minAge, maxAge = math.Min(minAge, age), math.Max(maxAge, age)
		ages[v.Values[features.Age]] = true
		if v.Tolerance() == 0 {
			unassessed++
			if !v.AssessedUntil().IsZero() {
				t.Errorf("customer %d: never assessed but valid until %v", i, v.AssessedUntil())
			}
		} else if !asOf.Before(v.AssessedUntil()) {
			lapsed++
		}
		if v.Flag(features.MarketingConsent) {
			consent++
		}
		if v.Flag(features.PersonalisationOptOut) {
			optOut++
		}
		if v.Salutation != "" {
			salutations++
			if utf8.RuneCountInString(v.Salutation) > features.MaxSalutationRunes {
				t.Errorf("customer %d: salutation %q too long", i, v.Salutation)
			}
		}
		if !v.UpdatedAt.Equal(asOf) {
			t.Errorf("customer %d: updated at %v, want %v", i, v.UpdatedAt, asOf)
		}
	}
	if minAge != 18 || maxAge > 88 || maxAge < 80 {
		t.Errorf("ages %v..%v, want 18..88 reaching past 80", minAge, maxAge)
	}
	if len(ages) < 60 {
		t.Errorf("only %d distinct ages", len(ages))
	}
	within := func(name string, count int, lo, hi float64) {
		t.Helper()
		if f := float64(count) / n; f < lo || f > hi {
			t.Errorf("%s: %.3f of customers, want %.2f..%.2f", name, f, lo, hi)
		}
	}
	within("never assessed", unassessed, 0.28, 0.36)
	within("marketing consent", consent, 0.70, 0.74)
	within("personalisation opt-out", optOut, 0.02, 0.04)
	within("with a salutation", salutations, 0.88, 0.92)
	within("assessment lapsed", lapsed, 0.10, 0.20)

	// The export reads back with no reject, equal to what was generated.
	var buf bytes.Buffer
	if err := bank.WriteCSV(context.Background(), &buf, n); err != nil {
		t.Fatal(err)
	}
	r, err := export.NewReader(&buf, asOf.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	read := 0
	for {
		id, v, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("customer %d: %v", read, err)
		}
		if id != demobank.ID(read) {
			t.Fatalf("row %d: id %q", read, id)
		}
		if diff := cmp.Diff(vs[read], v, equateNaNs); diff != "" {
			t.Fatalf("customer %s read back differs (-generated +read):\n%s", id, diff)
		}
		read++
	}
	if read != n {
		t.Errorf("read %d customers, want %d", read, n)
	}

	// Every product is available to someone, and no product to everyone
	// that has an eligibility limit.
	avail := make([]int, len(cat.Products))
	var dst []bool
	for i := range vs {
		dst = bank.Available(&vs[i], dst)
		for k, ok := range dst {
			if ok {
				avail[k]++
			}
		}
	}
	for k, a := range avail {
		if a == 0 {
			t.Errorf("%s available to no customer", cat.Products[k].ID)
		}
	}
}

func TestOutcomes(t *testing.T) {
	const n = 5_000
	bank, cat := newBank(t, 11)
	pr, err := features.NewProfile(cat)
	if err != nil {
		t.Fatal(err)
	}
	taken := make([]int, len(cat.Products))
	total := 0
	var avail []bool
	for i := 0; i < n; i++ {
		id, v := bank.Customer(i)
		cu := pr.Customer(&v, make([]bool, len(cat.Products)))
		avail = bank.Available(&v, avail)
		last := -1
		for _, k := range bank.Outcomes(i, id, &v, nil) {
			p := &cat.Products[k]
			if k <= last {
				t.Fatalf("customer %d: outcomes out of order", i)
			}
			last = k
			if ex := cat.Suitable(p, &cu, asOf); ex != catalog.ExclusionNone {
				t.Fatalf("customer %d took up %s, which it may not have (%v)", i, p.ID, ex)
			}
			if !avail[k] {
				t.Fatalf("customer %d took up %s, not available to it", i, p.ID)
			}
			taken[k]++
			total++
		}
		for k := range cat.Products {
			if pt := demobank.Truth(id, &v, &cat.Products[k]); !(pt > 0 && pt < 1) {
				t.Fatalf("customer %d, %s: truth %v", i, cat.Products[k].ID, pt)
			}
		}
	}
	if total == 0 || total > n {
		t.Errorf("%d take-ups over %d customers", total, n)
	}
	some := 0
	for _, c := range taken {
		if c > 0 {
			some++
		}
	}
	if some < len(cat.Products)/2 {
		t.Errorf("only %d of %d products taken up at all: %v", some, len(cat.Products), taken)
	}

	// Outcomes appends to dst.
	id, v := bank.Customer(0)
	if got := bank.Outcomes(0, id, &v, []int{-1}); len(got) == 0 || got[0] != -1 {
		t.Errorf("Outcomes did not append to dst: %v", got)
	}
}

func TestWriteOutcomes(t *testing.T) {
	bank, cat := newBank(t, 11)
	const n = 500
	var buf bytes.Buffer
	if err := bank.WriteOutcomes(context.Background(), &buf, n); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 0; i < n; i++ {
		id, v := bank.Customer(i)
		for _, k := range bank.Outcomes(i, id, &v, nil) {
			want = append(want, id+","+cat.Products[k].ID)
		}
	}
	sc := bufio.NewScanner(&buf)
	if !sc.Scan() || sc.Text() != "customer_id,product_id" {
		t.Fatalf("header %q", sc.Text())
	}
	var got []string
	for sc.Scan() {
		got = append(got, sc.Text())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcome rows (-want +got):\n%s", diff)
	}
	if len(got) == 0 {
		t.Error("no take-ups in 500 customers")
	}
}

func TestWriteCanceled(t *testing.T) {
	bank, _ := newBank(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := bank.WriteCSV(ctx, io.Discard, 10); !errors.Is(err, context.Canceled) {
		t.Errorf("WriteCSV(canceled) = %v", err)
	}
	if err := bank.WriteOutcomes(ctx, io.Discard, 10); !errors.Is(err, context.Canceled) {
		t.Errorf("WriteOutcomes(canceled) = %v", err)
	}
}

func TestNewRejectsCatalog(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(catalog.DefaultBytes(), &doc); err != nil {
		t.Fatal(err)
	}
	doc["products"].([]any)[0].(map[string]any)["held_when"] = "holds_yacht"
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := demobank.New(1, asOf, cat); err == nil || !strings.Contains(err.Error(), "holds_yacht") {
		t.Errorf("New with an unknown feature: %v", err)
	}
}
