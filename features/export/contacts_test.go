package export_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/export"
)

func TestLoadContactLinks(t *testing.T) {
	ctx := context.Background()
	s := suite.Store(t, features.Options{})
	in := "customer_id,external_userid\n" +
		"C000000001,wmAAA1\n" +
		"C000000002,wm bad\n" + // rejected: a malformed id
		"C000000003\n" + // rejected: a field short
		" C000000004 , wmDDD4 \n" +
		"C000000005,wmAAA1\n" // the later link of a contact wins
	var rejected []int
	sum, err := export.LoadContactLinks(ctx, s, strings.NewReader(in), export.LoadOptions{Chunk: 2, OnReject: func(e *export.RowError) {
		if !errors.Is(e, export.ErrBadRow) {
			t.Errorf("row error %v does not wrap ErrBadRow", e)
		}
		rejected = append(rejected, e.Line)
	}})
	if err != nil || sum != (export.LoadSummary{Loaded: 3, Rejected: 2}) {
		t.Fatalf("LoadContactLinks = %+v, %v", sum, err)
	}
	if len(rejected) != 2 || rejected[0] != 3 || rejected[1] != 4 {
		t.Errorf("rejected lines %v, want [3 4]", rejected)
	}
	for ext, want := range map[string]string{"wmAAA1": "C000000005", "wmDDD4": "C000000004"} {
		if got, err := s.LinkedCustomer(ctx, ext); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %s", ext, got, err, want)
		}
	}
	for _, bad := range []string{"", "external_userid\nwm1\n", "external_userid,customer_id,age\n", "external_userid,cust\n"} {
		if _, err := export.LoadContactLinks(ctx, s, strings.NewReader(bad), export.LoadOptions{}); err == nil {
			t.Errorf("header %q accepted", bad)
		}
	}
}
