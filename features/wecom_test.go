package features_test

import (
	"context"
	"errors"
	"testing"

	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/featurestest"
)

func TestContactLinks(t *testing.T) {
	suite.OnEach(t, func(t *testing.T, r featurestest.Redis) {
		ctx := context.Background()
		s := r.Store(t, features.Options{})
		links := []features.ContactLink{{ExternalUserID: "wmAAA1", CustomerID: "C000000001"}, {ExternalUserID: "wmBBB2", CustomerID: "C000000002"}}
		if err := s.LinkContacts(ctx, links); err != nil {
			t.Fatal(err)
		}
		// A contact moved to another customer: the later link wins.
		if err := s.LinkContacts(ctx, []features.ContactLink{{ExternalUserID: "wmBBB2", CustomerID: "C000000003"}}); err != nil {
			t.Fatal(err)
		}
		for ext, want := range map[string]string{"wmAAA1": "C000000001", "wmBBB2": "C000000003"} {
			if got, err := s.LinkedCustomer(ctx, ext); err != nil || got != want {
				t.Errorf("LinkedCustomer(%s) = %q, %v; want %s", ext, got, err, want)
			}
		}
		for _, ext := range []string{"wmNEVER", "", "wm bad"} {
			if _, err := s.LinkedCustomer(ctx, ext); !errors.Is(err, features.ErrNotLinked) {
				t.Errorf("LinkedCustomer(%q): %v, want ErrNotLinked", ext, err)
			}
		}
		if err := s.LinkContacts(ctx, []features.ContactLink{{ExternalUserID: "wmOK", CustomerID: "C1"}, {ExternalUserID: "wm bad", CustomerID: "C2"}}); err == nil {
			t.Error("a malformed id was linked")
		}
		if _, err := s.LinkedCustomer(ctx, "wmOK"); !errors.Is(err, features.ErrNotLinked) {
			t.Errorf("a call refused for a malformed id wrote the others: %v", err)
		}
	})
}
