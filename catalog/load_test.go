package catalog_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/directops/nbp/catalog"
)

// mutate returns the default catalog document changed by edit. The document
// is handled as generic JSON, so each test states only what it breaks.
func mutate(t testing.TB, edit func(doc map[string]any)) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(catalog.DefaultBytes(), &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc)
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// product returns the product with the given id in a generic document.
func product(doc map[string]any, id string) map[string]any {
	for _, p := range doc["products"].([]any) {
		if m := p.(map[string]any); m["id"] == id {
			return m
		}
	}
	panic("no product " + id)
}

func productCopy(doc map[string]any, id, ch string) map[string]any {
	return product(doc, id)["copy"].(map[string]any)[ch].(map[string]any)
}

var problemsHeader = regexp.MustCompile(`(\d+) problem\(s\):\n`)

// problemCount returns the number of problems a validation error reports,
// checking that the count it states matches the problems it lists.
func problemCount(t testing.TB, err error) int {
	t.Helper()
	msg := err.Error()
	m := problemsHeader.FindStringSubmatchIndex(msg)
	if m == nil {
		t.Fatalf("error %q does not count its problems", msg)
	}
	n, _ := strconv.Atoi(msg[m[2]:m[3]])
	listed := strings.Split(msg[m[1]:], "\n  ")
	if len(listed) != n {
		t.Fatalf("error states %d problems but lists %d:\n%s", n, len(listed), msg)
	}
	return n
}

func TestParseUnchangedDocument(t *testing.T) {
	// The control for every mutation below: the default catalog survives
	// the trip through generic JSON.
	if _, err := catalog.Parse(mutate(t, func(map[string]any) {})); err != nil {
		t.Fatalf("Parse(default through generic JSON): %v", err)
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name string
		edit func(doc map[string]any)
		// want are substrings of the error: the product id and the field.
		want []string
		// problems is how many problems the error lists; 0 when the
		// document does not decode at all.
		problems int
	}{
		{
			name: "unknown top-level field",
			edit: func(d map[string]any) { d["colour"] = "red" },
			want: []string{`unknown field "colour"`},
		},
		{
			name:     "unknown product field",
			edit:     func(d map[string]any) { product(d, "TD_1Y")["colour"] = "red" },
			want:     []string{"product TD_1Y", `unknown field "colour"`},
			problems: 1,
		},
		{
			name: "unknown eligibility field",
			edit: func(d map[string]any) {
				product(d, "TD_1Y")["eligibility"].(map[string]any)["min_income"] = 5000
			},
			want:     []string{"product TD_1Y", `unknown field "min_income"`},
			problems: 1,
		},
		{
			name:     "app_feed title of 15 characters",
			edit:     func(d map[string]any) { productCopy(d, "TD_3M", "app_feed")["title"] = strings.Repeat("存", 15) },
			want:     []string{"product TD_3M", "copy.app_feed.title", "15 characters"},
			problems: 1,
		},
		{
			name:     "batch cta of 7 characters",
			edit:     func(d map[string]any) { productCopy(d, "TD_3M", "batch")["cta"] = "立即存入领红包" },
			want:     []string{"product TD_3M", "copy.batch.cta"},
			problems: 1,
		},
		{
			name: "batch body with the risk warning over one SMS",
			edit: func(d map[string]any) {
				// 60 characters fit the body limit of 70, not with the
				// 16-character wealth warning.
				productCopy(d, "WM_CASH", "batch")["body"] = strings.Repeat("理", 60)
			},
			want:     []string{"product WM_CASH", "copy.batch.body", "with the risk warning"},
			problems: 1,
		},
		{
			name: "salutation counted at its longest",
			edit: func(d map[string]any) {
				// 9 + a salutation of up to 6 = 15 > 14.
				productCopy(d, "TD_3M", "app_feed")["title"] = "{salutation}" + strings.Repeat("存", 9)
			},
			want:     []string{"product TD_3M", "copy.app_feed.title"},
			problems: 1,
		},
		{
			name:     "unknown template variable",
			edit:     func(d map[string]any) { productCopy(d, "WM_EQUITY_MIX", "app_feed")["body"] = "年化{rate}" },
			want:     []string{"product WM_EQUITY_MIX", "copy.app_feed.body", "{rate}"},
			problems: 1,
		},
		{
			name:     "unclosed brace",
			edit:     func(d map[string]any) { productCopy(d, "TD_3M", "batch")["body"] = "年利率{rate" },
			want:     []string{"product TD_3M", "copy.batch.body", "unclosed"},
			problems: 1,
		},
		{
			name:     "unmatched closing brace",
			edit:     func(d map[string]any) { productCopy(d, "TD_3M", "batch")["title"] = "定期}" },
			want:     []string{"product TD_3M", "copy.batch.title", "unmatched"},
			problems: 1,
		},
		{
			name:     "nested braces",
			edit:     func(d map[string]any) { productCopy(d, "TD_3M", "wecom_agent")["body"] = "{{rate}}" },
			want:     []string{"product TD_3M", "copy.wecom_agent.body"},
			problems: 1,
		},
		{
			name:     "empty cta",
			edit:     func(d map[string]any) { productCopy(d, "TD_3M", "wecom_agent")["cta"] = " " },
			want:     []string{"product TD_3M", "copy.wecom_agent.cta", "empty"},
			problems: 1,
		},
		{
			name:     "risk level R6",
			edit:     func(d map[string]any) { product(d, "FUND_TECH")["risk_level"] = "R6" },
			want:     []string{"product FUND_TECH", "risk_level", "R6"},
			problems: 1,
		},
		{
			name:     "risk level on a deposit",
			edit:     func(d map[string]any) { product(d, "TD_3M")["risk_level"] = "R1" },
			want:     []string{"product TD_3M", "risk_level", "deposit"},
			problems: 1,
		},
		{
			name:     "wealth product at R5",
			edit:     func(d map[string]any) { product(d, "WM_EQUITY_MIX")["risk_level"] = "R5" },
			want:     []string{"product WM_EQUITY_MIX", "risk_level", "R5 outside the wealth range R1..R4"},
			problems: 1,
		},
		{
			name:     "fund product at R1",
			edit:     func(d map[string]any) { product(d, "FUND_BOND")["risk_level"] = "R1" },
			want:     []string{"product FUND_BOND", "risk_level", "R1 outside the fund range R2..R5"},
			problems: 1,
		},
		{
			name:     "investment product without a risk level",
			edit:     func(d map[string]any) { product(d, "GOLD_ACCUM")["risk_level"] = nil },
			want:     []string{"product GOLD_ACCUM", "risk_level", "needs a risk level"},
			problems: 1,
		},
		{
			name: "missing copy for an offered channel",
			edit: func(d map[string]any) {
				delete(product(d, "TD_3M")["copy"].(map[string]any), "batch")
			},
			want:     []string{"product TD_3M", "copy.batch", "missing"},
			problems: 1,
		},
		{
			name: "copy for a channel not offered",
			edit: func(d map[string]any) {
				p := product(d, "FUND_TECH")
				p["copy"].(map[string]any)["batch"] = productCopy(d, "FUND_BOND", "batch")
			},
			want:     []string{"product FUND_TECH", "copy.batch", "not offered"},
			problems: 1,
		},
		{
			name: "duplicate product id",
			edit: func(d map[string]any) {
				product(d, "TD_1Y")["id"] = "TD_3M"
			},
			want:     []string{"product TD_3M", "id", "duplicate"},
			problems: 1,
		},
		{
			name:     "malformed product id",
			edit:     func(d map[string]any) { product(d, "TD_1Y")["id"] = "td-1y" },
			want:     []string{"product td-1y", ".id"},
			problems: 1,
		},
		{
			name: "unknown region",
			edit: func(d map[string]any) {
				el := product(d, "INS_HUIMINBAO")["eligibility"].(map[string]any)
				el["regions"] = append(el["regions"].([]any), "XX")
			},
			want:     []string{"product INS_HUIMINBAO", "eligibility.regions", `"XX"`},
			problems: 1,
		},
		{
			name: "unknown channel in eligibility",
			edit: func(d map[string]any) {
				el := product(d, "FUND_TECH")["eligibility"].(map[string]any)
				el["channels"] = append(el["channels"].([]any), "sms")
			},
			want:     []string{"product FUND_TECH", "eligibility.channels", `"sms"`},
			problems: 1,
		},
		{
			name: "sale window closes before it opens",
			edit: func(d map[string]any) {
				product(d, "TD_3M")["sale_window"] = map[string]any{"from": "2027-01-01", "until": "2026-01-01"}
			},
			want:     []string{"product TD_3M", "sale_window", "not before"},
			problems: 1,
		},
		{
			name: "sale window with a bad date",
			edit: func(d map[string]any) {
				product(d, "TD_3M")["sale_window"] = map[string]any{"from": "2026-02-30"}
			},
			want:     []string{"product TD_3M", "sale_window", "2026-02-30"},
			problems: 1,
		},
		{
			name:     "max age below min age",
			edit:     func(d map[string]any) { product(d, "CC_YOUTH")["eligibility"].(map[string]any)["max_age"] = 17 },
			want:     []string{"product CC_YOUTH", "eligibility.max_age"},
			problems: 1,
		},
		{
			name:     "kyc level 4",
			edit:     func(d map[string]any) { product(d, "CC_YOUTH")["eligibility"].(map[string]any)["min_kyc"] = 4 },
			want:     []string{"product CC_YOUTH", "eligibility.min_kyc"},
			problems: 1,
		},
		{
			name:     "prior not a rate",
			edit:     func(d map[string]any) { product(d, "TD_3M")["prior"] = 1.5 },
			want:     []string{"product TD_3M", "prior"},
			problems: 1,
		},
		{
			name:     "reserved attribute name",
			edit:     func(d map[string]any) { product(d, "TD_3M")["attributes"].(map[string]any)["salutation"] = "王女士" },
			want:     []string{"product TD_3M", "attributes.salutation"},
			problems: 1,
		},
		{
			name: "bad signal op",
			edit: func(d map[string]any) {
				sig := product(d, "TD_3M")["rules"].(map[string]any)["signals"].([]any)[1].(map[string]any)
				sig["op"] = "=>"
			},
			want:     []string{"product TD_3M", "rules.signals[1].op"},
			problems: 1,
		},
		{
			name:     "lever for an unknown product",
			edit:     func(d map[string]any) { d["levers"].([]any)[0].(map[string]any)["product"] = "NO_SUCH" },
			want:     []string{"levers[0].product", "NO_SUCH"},
			problems: 1,
		},
		{
			name: "investment category without a warning",
			edit: func(d map[string]any) {
				d["categories"].([]any)[1].(map[string]any)["disclaimer"] = ""
			},
			want:     []string{"categories[1].disclaimer"},
			problems: 1,
		},
		{
			name: "channel policy missing",
			edit: func(d map[string]any) {
				delete(d["channels"].(map[string]any), "batch")
			},
			want:     []string{"channels.batch", "missing"},
			problems: 1,
		},
		{
			name:     "senior cap R6",
			edit:     func(d map[string]any) { d["policy"].(map[string]any)["senior_max_risk"] = "R6" },
			want:     []string{"policy.senior_max_risk"},
			problems: 1,
		},
		{
			name: "several problems at once",
			edit: func(d map[string]any) {
				productCopy(d, "TD_3M", "app_feed")["title"] = strings.Repeat("存", 15)
				product(d, "FUND_TECH")["risk_level"] = "R6"
				product(d, "WM_CASH")["eligibility"].(map[string]any)["regions"] = []any{"XX"}
				productCopy(d, "WM_EQUITY_MIX", "app_feed")["body"] = "年化{rate}"
				product(d, "TD_1Y")["id"] = "TD_3M"
			},
			want: []string{
				"product TD_3M: copy.app_feed.title",
				"product FUND_TECH: risk_level",
				"product WM_CASH: eligibility.regions",
				"product WM_EQUITY_MIX: copy.app_feed.body",
				"product TD_3M: id",
			},
			problems: 5,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := catalog.Parse(mutate(t, tc.edit))
			if err == nil {
				t.Fatalf("Parse succeeded (%d products), want an error", len(c.Products))
			}
			if c != nil {
				t.Errorf("Parse returned a catalog with its error")
			}
			if !errors.Is(err, catalog.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
			if tc.problems > 0 {
				if got := problemCount(t, err); got != tc.problems {
					t.Errorf("%d problems, want %d:\n%v", got, tc.problems, err)
				}
			}
		})
	}
}

func TestParseCountsRunesNotBytes(t *testing.T) {
	// 14 Chinese characters are 42 bytes: they fit the app_feed title
	// limit of 14 only when counted as characters.
	title := strings.Repeat("存", 14)
	c, err := catalog.Parse(mutate(t, func(d map[string]any) {
		productCopy(d, "TD_3M", "app_feed")["title"] = title
	}))
	if err != nil {
		t.Fatalf("Parse(a 14-character title): %v", err)
	}
	cp, ok := c.Render(mustProduct(t, c, "TD_3M"), catalog.AppFeed, "")
	if !ok || cp.Title != title {
		t.Errorf("Render title %q, %v; want %q", cp.Title, ok, title)
	}
}

func TestParseMalformed(t *testing.T) {
	valid := string(catalog.DefaultBytes())
	tests := map[string]string{
		"empty":         "",
		"not json":      "catalog",
		"truncated":     valid[:len(valid)/2],
		"array":         "[]",
		"wrong type":    `{"version": 1}`,
		"no products":   `{"version": "v", "products": []}`,
		"null product":  strings.Replace(valid, `"products": [`, `"products": [null,`, 1),
		"two documents": valid + valid,
		"stray brace":   valid + "}",
		"stray bracket": valid + "\n]",
		"stray garbage": valid + " }garbage",
	}
	for name, doc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := catalog.Parse([]byte(doc))
			if err == nil {
				t.Fatalf("Parse succeeded (%d products), want an error", len(c.Products))
			}
			if !errors.Is(err, catalog.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	if err := os.WriteFile(good, catalog.DefaultBytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Load(good)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := defaultCatalog(t)
	if c.Version != want.Version || len(c.Products) != len(want.Products) {
		t.Errorf("Load: version %q with %d products, want %q with %d", c.Version, len(c.Products), want.Version, len(want.Products))
	}

	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, mutate(t, func(d map[string]any) { product(d, "TD_3M")["risk_level"] = "R1" }), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = catalog.Load(bad)
	if !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), bad) {
		t.Errorf("Load(bad) error %v, want ErrInvalid naming the file", err)
	}

	if _, err := catalog.Load(filepath.Join(dir, "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) error %v, want os.ErrNotExist", err)
	}
}

func TestDefaultBytesIsACopy(t *testing.T) {
	b := catalog.DefaultBytes()
	for i := range b {
		b[i] = 'x'
	}
	if _, err := catalog.Default(); err != nil {
		t.Errorf("Default after changing DefaultBytes' result: %v", err)
	}
}

func TestReasonTextsRevealNoValues(t *testing.T) {
	for _, text := range []string{"余额 123,456 元", "年化收益3%", "资产超过１０万", "约￥五万"} {
		raw := map[string]any{}
		if err := json.Unmarshal(catalog.DefaultBytes(), &raw); err != nil {
			t.Fatal(err)
		}
		raw["reasons"].(map[string]any)["HIGH_ASSETS"] = text
		b, _ := json.Marshal(raw)
		if _, err := catalog.Parse(b); err == nil || !strings.Contains(err.Error(), "reasons.HIGH_ASSETS") {
			t.Errorf("%q accepted as a reason text: %v", text, err)
		}
	}
	c, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	for code, text := range c.Reasons {
		if strings.ContainsAny(text, "0123456789元%¥") {
			t.Errorf("%s: %q", code, text)
		}
	}
}

func TestParseArbitration(t *testing.T) {
	c, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.ParseArbitration([]byte(`{"version": "x", "business_value": {"TD_1Y": 2}, "context_weights": {"app_feed": {"wealth": 3}}}`))
	if err != nil {
		t.Fatal(err)
	}
	td, _ := c.Product("TD_1Y")
	wm, _ := c.Product("WM_CASH")
	at := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	if got := a.Factor(td, catalog.AppFeed, at); got != 2*1.0 {
		t.Errorf("TD_1Y factor %v, want 2 (value 2 × deposit weight 1)", got)
	}
	if got, want := a.Factor(wm, catalog.AppFeed, at), wm.BusinessValue*3; got != want {
		t.Errorf("WM_CASH factor %v, want %v", got, want)
	}
	if len(a.Levers) != len(c.Levers) {
		t.Errorf("levers not named keep the catalog's")
	}
	for _, tc := range []struct{ doc, want string }{
		{`{"version": ""}`, "version"},
		{`{"version": "x", "business_value": {"NOPE": 1}}`, "business_value.NOPE"},
		{`{"version": "x", "business_value": {"TD_1Y": -1}}`, "product TD_1Y: business_value"},
		{`{"version": "x", "context_weights": {"sms": {"wealth": 1}}}`, "context_weights.sms"},
		{`{"version": "x", "context_weights": {"app_feed": {"crypto": 1}}}`, "context_weights.app_feed.crypto"},
		{`{"version": "x", "levers": [{"product": "TD_1Y", "factor": 11}]}`, "levers[0].factor"},
		{`{"version": "x", "levers": [{"product": "TD_1Y", "factor": 2, "from": "2027-01-01", "until": "2026-01-01"}]}`, "levers[0]"},
		{`{"version": "x", "surprise": 1}`, "unknown field"},
	} {
		if _, err := c.ParseArbitration([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one naming %s", tc.doc, err, tc.want)
		}
	}
	b, err := c.MarshalArbitration()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ParseArbitration(b); err != nil {
		t.Fatalf("the printed arbitration does not parse back: %v", err)
	}
}
