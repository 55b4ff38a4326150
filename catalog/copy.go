package catalog

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Template variables every product has. A product's attributes add more.
const (
	VarSalutation = "salutation" // how the customer is addressed, e.g. 王女士
	VarName       = "name"       // the product's name
)

// GenericSalutation addresses a customer whose salutation is unknown or who
// opted out of personalisation.
const GenericSalutation = "尊敬的客户"

// MaxSalutationRunes is the longest salutation a template may receive; longer
// ones are replaced by GenericSalutation. Copy length limits are checked at
// load against a salutation of this length.
const MaxSalutationRunes = 6

// Copy is rendered push copy for one product on one channel.
type Copy struct {
	Title      string
	Body       string
	CTA        string
	Disclaimer string
}

// template is a parsed copy template: literal text and variables in turn.
// Once compiled for its product (resolve), only the salutation is left to
// fill at request time, and the copy with the generic salutation is kept
// whole, so that rendering it allocates nothing.
type template struct {
	parts   []part
	generic string // rendered with GenericSalutation, once resolved
	size    int    // bytes of the literal parts, once resolved
}

type part struct {
	lit string
	v   string // variable name when lit == ""
}

type copyTemplate struct {
	ok               bool
	title, body, cta template
}

// parseTemplate parses text with {variable} placeholders. Braces cannot be
// escaped: copy has no use for literal braces.
func parseTemplate(s string) (template, error) {
	var t template
	for len(s) > 0 {
		open := strings.IndexAny(s, "{}")
		if open < 0 {
			t.parts = append(t.parts, part{lit: s})
			break
		}
		if s[open] == '}' {
			return template{}, fmt.Errorf("unmatched '}' at byte %d", open)
		}
		if open > 0 {
			t.parts = append(t.parts, part{lit: s[:open]})
		}
		end := strings.IndexAny(s[open+1:], "{}")
		if end < 0 || s[open+1+end] == '{' {
			return template{}, fmt.Errorf("unclosed '{' at byte %d", open)
		}
		name := s[open+1 : open+1+end]
		if !isIdent(name) {
			return template{}, fmt.Errorf("bad variable name %q", name)
		}
		t.parts = append(t.parts, part{v: name})
		s = s[open+1+end+1:]
	}
	return t, nil
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' && i > 0) {
			return false
		}
	}
	return true
}

// vars lists the variables the template uses.
func (t template) vars() []string {
	var vs []string
	for _, p := range t.parts {
		if p.lit == "" && p.v != "" {
			vs = append(vs, p.v)
		}
	}
	return vs
}

// resolve compiles the template for its product: the product's name and
// attributes become literal text (they change only with the catalog), next
// literals merge, and the generic rendering is kept.
func (t template) resolve(p *Product) template {
	var r template
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			r.parts = append(r.parts, part{lit: lit.String()})
			r.size += lit.Len()
			lit.Reset()
		}
	}
	for _, pt := range t.parts {
		switch {
		case pt.lit != "":
			lit.WriteString(pt.lit)
		case pt.v == VarSalutation:
			flush()
			r.parts = append(r.parts, pt)
		case pt.v == VarName:
			lit.WriteString(p.Name)
		default:
			lit.WriteString(p.Attributes[pt.v])
		}
	}
	flush()
	r.generic = r.fill(GenericSalutation)
	return r
}

// fill renders a resolved template for a salutation.
func (t template) fill(salutation string) string {
	switch {
	case len(t.parts) == 0:
		return ""
	case len(t.parts) == 1 && t.parts[0].lit != "":
		return t.parts[0].lit
	}
	var b strings.Builder
	b.Grow(t.size + 2*len(salutation))
	for _, pt := range t.parts {
		if pt.lit != "" {
			b.WriteString(pt.lit)
		} else {
			b.WriteString(salutation)
		}
	}
	return b.String()
}

func (t template) renderString(salutation string) string {
	if salutation == GenericSalutation {
		return t.generic
	}
	return t.fill(salutation)
}

// Render returns the product's copy for the channel, addressed with
// salutation (GenericSalutation when empty or longer than
// MaxSalutationRunes). It returns false when the product has no copy for the
// channel. Lengths are within the channel's limits: Load checked them.
func (c *Catalog) Render(p *Product, ch Channel, salutation string) (Copy, bool) {
	if ch >= NumChannels || !p.copy[ch].ok {
		return Copy{}, false
	}
	if salutation == "" || utf8.RuneCountInString(salutation) > MaxSalutationRunes {
		salutation = GenericSalutation
	}
	t := &p.copy[ch]
	return Copy{
		Title:      t.title.renderString(salutation),
		Body:       t.body.renderString(salutation),
		CTA:        t.cta.renderString(salutation),
		Disclaimer: c.Disclaimer(p),
	}, true
}

// HasCopy reports whether the product has copy for the channel.
func (p *Product) HasCopy(ch Channel) bool {
	return ch < NumChannels && p.copy[ch].ok
}
