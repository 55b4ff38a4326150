package catalog_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/directops/nbp/catalog"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// renderedCopy is one golden entry.
type renderedCopy struct {
	Product    string `json:"product"`
	Channel    string `json:"channel"`
	Salutation string `json:"salutation"`
	Title      string `json:"title"`
	Body       string `json:"body"`
	CTA        string `json:"cta"`
	Disclaimer string `json:"disclaimer"`
}

func renderAll(t *testing.T, c *catalog.Catalog, salutations []string) []renderedCopy {
	t.Helper()
	var out []renderedCopy
	for i := range c.Products {
		p := &c.Products[i]
		for ch := catalog.Channel(0); ch < catalog.NumChannels; ch++ {
			if !p.HasCopy(ch) {
				if _, ok := c.Render(p, ch, "王女士"); ok {
					t.Errorf("%s has no %s copy, but Render returned some", p.ID, ch)
				}
				continue
			}
			for _, s := range salutations {
				cp, ok := c.Render(p, ch, s)
				if !ok {
					t.Errorf("Render(%s, %s): no copy", p.ID, ch)
					continue
				}
				out = append(out, renderedCopy{
					Product: p.ID, Channel: ch.String(), Salutation: s,
					Title: cp.Title, Body: cp.Body, CTA: cp.CTA, Disclaimer: cp.Disclaimer,
				})
			}
		}
	}
	return out
}

func TestRenderGolden(t *testing.T) {
	c := defaultCatalog(t)
	got := renderAll(t, c, []string{"王女士", ""})

	path := filepath.Join("testdata", "copy.golden.json")
	if *update {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(got); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	var want []renderedCopy
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rendered copy differs from %s (-want +got); if intended, run go test -update:\n%s", path, diff)
	}
}

func TestRenderWithinLimits(t *testing.T) {
	c := defaultCatalog(t)
	// The longest salutation a template may receive, the generic one, and
	// a short one.
	salutations := []string{"欧阳娜娜女士", "", "王女士"}
	if n := utf8.RuneCountInString(salutations[0]); n != catalog.MaxSalutationRunes {
		t.Fatalf("longest salutation has %d runes, want %d", n, catalog.MaxSalutationRunes)
	}
	for _, rc := range renderAll(t, c, salutations) {
		ch, err := catalog.ParseChannel(rc.Channel)
		if err != nil {
			t.Fatal(err)
		}
		lim := ch.Limits()
		name := rc.Product + "/" + rc.Channel + "/" + rc.Salutation
		check := func(what, s string, max int) {
			if n := utf8.RuneCountInString(s); n > max {
				t.Errorf("%s: %s has %d characters, over the limit of %d: %q", name, what, n, max, s)
			}
			if strings.TrimSpace(s) == "" && what != "disclaimer" {
				t.Errorf("%s: empty %s", name, what)
			}
			if strings.ContainsAny(s, "{}") {
				t.Errorf("%s: %s has an unresolved variable: %q", name, what, s)
			}
		}
		check("title", rc.Title, lim.Title)
		check("body", rc.Body, lim.Body)
		check("cta", rc.CTA, lim.CTA)
		if lim.BodyWithDisclaimer > 0 {
			check("body with the risk warning", rc.Body+rc.Disclaimer, lim.BodyWithDisclaimer)
		}
	}
}

func TestRenderSalutation(t *testing.T) {
	c := defaultCatalog(t)
	p := mustProduct(t, c, "TD_1Y")
	generic, ok := c.Render(p, catalog.WecomAgent, "")
	if !ok {
		t.Fatal("TD_1Y has no wecom_agent copy")
	}
	if !strings.HasPrefix(generic.Body, catalog.GenericSalutation) {
		t.Errorf("body %q does not start with %q", generic.Body, catalog.GenericSalutation)
	}
	tests := []struct {
		salutation string
		want       string // what the body starts with
	}{
		{"王女士", "王女士"},
		{"欧阳娜娜女士", "欧阳娜娜女士"},                   // 6 runes: kept
		{"欧阳娜娜娜女士", catalog.GenericSalutation}, // 7 runes: too long
		{"", catalog.GenericSalutation},
	}
	for _, tc := range tests {
		t.Run(tc.salutation, func(t *testing.T) {
			cp, ok := c.Render(p, catalog.WecomAgent, tc.salutation)
			if !ok {
				t.Fatal("no copy")
			}
			if !strings.HasPrefix(cp.Body, tc.want+"您好") {
				t.Errorf("body %q, want it to start with %q", cp.Body, tc.want)
			}
			if tc.want == catalog.GenericSalutation {
				if diff := cmp.Diff(generic, cp); diff != "" {
					t.Errorf("copy differs from the generic one (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestRenderNoCopy(t *testing.T) {
	c := defaultCatalog(t)
	p := mustProduct(t, c, "WM_EQUITY_MIX") // not sold in batch
	tests := []struct {
		ch   catalog.Channel
		want bool
	}{
		{catalog.AppFeed, true},
		{catalog.WecomAgent, true},
		{catalog.Batch, false},
		{catalog.NumChannels, false},
		{200, false},
	}
	for _, tc := range tests {
		t.Run(tc.ch.String(), func(t *testing.T) {
			cp, ok := c.Render(p, tc.ch, "王女士")
			if ok != tc.want || p.HasCopy(tc.ch) != tc.want {
				t.Errorf("Render ok %v, HasCopy %v; want %v", ok, p.HasCopy(tc.ch), tc.want)
			}
			if !ok && cp != (catalog.Copy{}) {
				t.Errorf("Render returned %+v without copy", cp)
			}
		})
	}
}

func TestRenderAttributes(t *testing.T) {
	c := defaultCatalog(t)
	tests := []struct {
		id   string
		ch   catalog.Channel
		want catalog.Copy
	}{
		{"TD_3M", catalog.Batch, catalog.Copy{
			Title: "三个月定期存款",
			Body:  "王女士，三个月定期年利率1.05%，期限短更灵活，手机银行即可办理。",
			CTA:   "去存入",
		}},
		{"INS_ACCIDENT", catalog.AppFeed, catalog.Copy{
			Title:      "意外险年付99元",
			Body:       "王女士，99元一年，意外保障最高50万元",
			CTA:        "了解保障",
			Disclaimer: "保险产品由合作保险公司承保，请仔细阅读条款",
		}},
		{"WM_CASH", catalog.WecomAgent, catalog.Copy{
			Title:      "天天理财现金管理",
			Body:       "王女士您好，您活期里的零钱可以放到天天理财，1元起购，业绩比较基准1.6%，申购赎回都很灵活，适合日常备用金打理。",
			CTA:        "发送产品链接",
			Disclaimer: "理财非存款，产品有风险，投资须谨慎",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.id+"/"+tc.ch.String(), func(t *testing.T) {
			got, ok := c.Render(mustProduct(t, c, tc.id), tc.ch, "王女士")
			if !ok {
				t.Fatal("no copy")
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Render (-want +got):\n%s", diff)
			}
		})
	}
}
