package export

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/directops/nbp/features"
)

// The columns of a contact links export.
const (
	ColumnExternalUserID = "external_userid"
)

// LinkStore is where contact links go (a *features.Store is one).
type LinkStore interface {
	LinkContacts(ctx context.Context, links []features.ContactLink) error
}

// LoadContactLinks streams a CSV export of WeCom contact links (columns
// external_userid and customer_id, in any order) into the store, in
// pipelined chunks of o.Chunk. A row with a malformed id is rejected and
// reported (o.OnReject), the others are linked; a bad header or an
// unreachable store stops the load. Links are idempotent: a load can be
// re-run whole.
func LoadContactLinks(ctx context.Context, s LinkStore, r io.Reader, o LoadOptions) (LoadSummary, error) {
	o.defaults(nil) // links have no load time
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return LoadSummary{}, fmt.Errorf("contact links header: %w", err)
	}
	ext, cust := -1, -1
	for i, c := range head {
		switch strings.TrimSpace(strings.TrimPrefix(c, "\ufeff")) {
		case ColumnExternalUserID:
			ext = i
		case ColumnCustomerID:
			cust = i
		default:
			return LoadSummary{}, fmt.Errorf("contact links header: unknown column %q: want %s and %s", c, ColumnExternalUserID, ColumnCustomerID)
		}
	}
	if ext < 0 || cust < 0 {
		return LoadSummary{}, fmt.Errorf("contact links header %q: want %s and %s", head, ColumnExternalUserID, ColumnCustomerID)
	}
	cr.FieldsPerRecord = len(head)
	var sum LoadSummary
	links := make([]features.ContactLink, 0, o.Chunk)
	flush := func() error {
		if len(links) == 0 {
			return nil
		}
		if err := s.LinkContacts(ctx, links); err != nil {
			return fmt.Errorf("load contact links: %w", err)
		}
		sum.Loaded += len(links)
		links = links[:0]
		if o.Progress != nil {
			o.Progress(sum.Loaded, sum.Rejected)
		}
		return nil
	}
	reject := func(err error) {
		line, _ := cr.FieldPos(0)
		sum.Rejected++
		if o.OnReject != nil {
			o.OnReject(&RowError{Line: line, Err: err})
		}
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) && !errors.Is(pe.Err, csv.ErrQuote) && !errors.Is(pe.Err, csv.ErrBareQuote) {
			reject(fmt.Errorf("%w: %v", ErrBadRow, pe.Err))
			continue
		}
		if err != nil {
			return sum, fmt.Errorf("contact links: %w", err)
		}
		l := features.ContactLink{ExternalUserID: strings.TrimSpace(rec[ext]), CustomerID: strings.TrimSpace(rec[cust])}
		if !features.ValidID(l.ExternalUserID) || !features.ValidID(l.CustomerID) {
			reject(fmt.Errorf("%w: external_userid and customer_id must be 1 to 64 of A-Z a-z 0-9 _ -", ErrBadRow))
			continue
		}
		links = append(links, l)
		if len(links) == o.Chunk {
			if err := flush(); err != nil {
				return sum, err
			}
		}
	}
	return sum, flush()
}
