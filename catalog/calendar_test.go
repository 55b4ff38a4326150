package catalog_test

import (
	"strings"
	"testing"
	"time"

	"github.com/directops/nbp/catalog"
)

func TestZone(t *testing.T) {
	// 2026-11-27 00:00 in Beijing is 2026-11-26 16:00 UTC.
	at := time.Date(2026, 11, 26, 16, 0, 0, 0, time.UTC)
	if got := at.In(catalog.Zone()).Format(time.DateTime); got != "2026-11-27 00:00:00" {
		t.Errorf("in the bank's zone: %s", got)
	}
	if got, want := catalog.Day(at), catalog.Day(at.Add(-time.Second))+1; got != want {
		t.Errorf("Day at midnight = %d, a second before %d", got, want-1)
	}
	if got := catalog.Midnight(at.Add(23*time.Hour + 59*time.Minute)); !got.Equal(at) {
		t.Errorf("Midnight = %v, want %v", got, at)
	}
}

// onSale lists the products of c on sale at t, and their categories.
func onSale(c *catalog.Catalog, t time.Time) (ids []string, cats map[string]bool) {
	cats = map[string]bool{}
	for i := range c.Products {
		if p := &c.Products[i]; p.SaleWindow.Contains(t) {
			ids = append(ids, p.ID)
			cats[p.Category] = true
		}
	}
	return ids, cats
}

func TestDefaultAt(t *testing.T) {
	def := defaultCatalog(t)
	// The day the catalog was written for is the one its version names.
	if !strings.HasPrefix(def.Version, "demo-2026.11.27") {
		t.Fatalf("version %q: the written-for day in calendar.go must follow it", def.Version)
	}
	written := time.Date(2026, 11, 27, 12, 0, 0, 0, catalog.Zone())
	for _, tc := range []struct {
		now     time.Time
		years   int
		version string
	}{
		{written, 0, def.Version},
		{time.Date(2027, 6, 15, 12, 0, 0, 0, catalog.Zone()), 0, def.Version},
		{time.Date(2027, 11, 26, 23, 59, 0, 0, catalog.Zone()), 0, def.Version},
		{time.Date(2027, 11, 27, 0, 0, 0, 0, catalog.Zone()), 1, def.Version + "+1y"},
		{time.Date(2031, 6, 15, 12, 0, 0, 0, catalog.Zone()), 4, def.Version + "+4y"},
		{time.Date(2045, 1, 1, 12, 0, 0, 0, catalog.Zone()), 18, def.Version + "+18y"},
	} {
		t.Run(tc.now.Format(time.DateOnly), func(t *testing.T) {
			c, err := catalog.DefaultAt(tc.now)
			if err != nil {
				t.Fatal(err)
			}
			if c.Version != tc.version {
				t.Errorf("version %q, want %q", c.Version, tc.version)
			}
			// Moved by whole years: the demo on that day sees what the
			// catalog shows on the same day of the first year.
			same := tc.now.AddDate(-tc.years, 0, 0)
			got, gotCats := onSale(c, tc.now)
			want, _ := onSale(def, same)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("on sale %v, want those of %s: %v", got, same.Format(time.DateOnly), want)
			}
			// A sensible spread, whatever has closed.
			if len(got) < 10 || len(gotCats) < 4 {
				t.Errorf("%d products in %d categories on sale: %v", len(got), len(gotCats), got)
			}
			for i := range c.Levers {
				if l, d := c.Levers[i].Window, def.Levers[i].Window; !l.From.Equal(d.From.AddDate(tc.years, 0, 0)) || !l.Until.Equal(d.Until.AddDate(tc.years, 0, 0)) {
					t.Errorf("lever %d: %v, want %v moved %d years", i, l, d, tc.years)
				}
			}
		})
	}
	// The embedded catalog itself is not touched.
	if again := defaultCatalog(t); again.Version != def.Version || !again.Levers[0].Window.From.Equal(def.Levers[0].Window.From) {
		t.Error("DefaultAt changed the embedded catalog")
	}
}
