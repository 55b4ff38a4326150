package catalog_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/directops/nbp/catalog"
)

func TestParseMinimal(t *testing.T) {
	c, err := catalog.Load(filepath.Join("testdata", "minimal.json"))
	if err != nil {
		t.Fatal(err)
	}
	p := mustProduct(t, c, "WM")
	cp, ok := c.Render(p, catalog.AppFeed, "")
	want := catalog.Copy{Title: "理财2%", Body: "尊敬的客户，2%", CTA: "看", Disclaimer: "理财非存款，产品有风险，投资须谨慎"}
	if !ok || cp != want {
		t.Errorf("Render = %+v, %v; want %+v", cp, ok, want)
	}
	if p.HasCopy(catalog.WecomAgent) || p.Eligibility.MinAge != 0 || p.Risk != 2 {
		t.Errorf("product %+v", p)
	}
}

// FuzzParse: the parser never panics, and whatever it accepts renders
// within every channel's limits.
func FuzzParse(f *testing.F) {
	valid := string(catalog.DefaultBytes())
	minimal, err := os.ReadFile(filepath.Join("testdata", "minimal.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		valid,
		string(minimal),
		valid[:len(valid)/3],
		strings.Replace(valid, `"R4"`, `"R6"`, 1),
		strings.Replace(valid, `{rate}`, `{rate`, 1),
		strings.Replace(valid, `"三个月定期存款"`, `"三个月定期存款三个月定期存款三"`, 1),
		strings.Replace(valid, `"TD_1Y"`, `"TD_3M"`, 1),
		strings.Replace(valid, `"GD"`, `"XX"`, 1),
		strings.Replace(string(minimal), `"R2"`, `null`, 1),
		strings.Replace(string(minimal), `"copy"`, `"kopy"`, 1),
		`{}`,
		`{"products":[null]}`,
		`null`,
	} {
		f.Add([]byte(s))
	}
	salutations := []string{"", "欧阳娜娜女士", "王女士", "欧阳娜娜娜女士"}
	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	customers := []catalog.Customer{
		{Age: math.NaN()},
		{Known: true, Age: 70, Region: "GD", KYC: 3, RiskTolerance: 5, AssessedUntil: at.AddDate(1, 0, 0), MarketingConsent: true},
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := catalog.Parse(b)
		if err != nil {
			if c != nil || !errors.Is(err, catalog.ErrInvalid) {
				t.Fatalf("Parse = %v, %v: want nil and an error wrapping ErrInvalid", c, err)
			}
			return
		}
		for i := range c.Products {
			p := &c.Products[i]
			if q, err := c.Product(p.ID); err != nil || q != p {
				t.Fatalf("Product(%q) = %v, %v", p.ID, q, err)
			}
			for ch := catalog.Channel(0); ch < catalog.NumChannels; ch++ {
				for _, s := range salutations {
					cp, ok := c.Render(p, ch, s)
					if ok != p.HasCopy(ch) {
						t.Fatalf("%s/%s: Render ok %v, HasCopy %v", p.ID, ch, ok, p.HasCopy(ch))
					}
					if !ok {
						continue
					}
					lim := ch.Limits()
					if utf8.RuneCountInString(cp.Title) > lim.Title || utf8.RuneCountInString(cp.Body) > lim.Body || utf8.RuneCountInString(cp.CTA) > lim.CTA {
						t.Fatalf("%s/%s: copy over the limits %+v: %+v", p.ID, ch, lim, cp)
					}
					if lim.BodyWithDisclaimer > 0 && utf8.RuneCountInString(cp.Body+cp.Disclaimer) > lim.BodyWithDisclaimer {
						t.Fatalf("%s/%s: body and warning over %d: %+v", p.ID, ch, lim.BodyWithDisclaimer, cp)
					}
				}
				for k := range customers {
					cu := customers[k]
					cu.Held = make([]bool, len(c.Products))
					if ex := c.Check(p, &cu, ch, at); ex == catalog.ExclusionNone && p.Risk > 0 && !cu.Known {
						t.Fatalf("%s/%s: investment product for an unknown customer", p.ID, ch)
					}
				}
			}
		}
	})
}
