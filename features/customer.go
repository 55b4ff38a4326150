package features

import (
	"fmt"

	"github.com/directops/nbp/catalog"
)

// Profile turns vectors into the customer view the catalog's policies take.
// It resolves, once, each product's holding flag to a field.
type Profile struct {
	held  []Field        // per product index; -1 when the product has no holding flag
	index map[string]int // product id -> index
}

// NewProfile checks every feature the catalog names against the schema and
// returns the mapping. The error names each unknown feature with its
// product and field.
func NewProfile(cat *catalog.Catalog) (*Profile, error) {
	if err := cat.CheckFeatures(func(name string) bool { _, ok := Lookup(name); return ok }); err != nil {
		return nil, fmt.Errorf("catalog against the feature schema: %w", err)
	}
	pr := &Profile{held: make([]Field, len(cat.Products)), index: make(map[string]int, len(cat.Products))}
	for i := range cat.Products {
		pr.index[cat.Products[i].ID] = i
		pr.held[i] = -1
		if name := cat.Products[i].HeldWhen; name != "" {
			f, _ := Lookup(name)
			if specs[f].Kind != Flag {
				return nil, fmt.Errorf("product %s: held_when: feature %q is not a 0/1 flag", cat.Products[i].ID, name)
			}
			pr.held[i] = f
		}
	}
	return pr, nil
}

// Customer fills the policy view of v. held must have one element per
// catalog product; it is filled and referenced by the result.
func (pr *Profile) Customer(v *Vector, held []bool) catalog.Customer {
	for i, f := range pr.held {
		held[i] = f >= 0 && v.Values[f] == 1
	}
	kyc := 0
	if k := v.Values[KYCLevel]; k == k {
		kyc = int(k)
	}
	return catalog.Customer{
		Known:            true,
		Age:              v.Get(Age),
		Region:           v.RegionCode(),
		KYC:              kyc,
		RiskTolerance:    v.Tolerance(),
		AssessedUntil:    v.AssessedUntil(),
		MarketingConsent: v.Flag(MarketingConsent),
		Held:             held,
	}
}
