package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/directops/nbp/features"
)

// Store is where a load puts the vectors (a *features.Store is one).
type Store interface {
	// PutMany stores the customers' vectors, each write atomic.
	PutMany(ctx context.Context, ids []string, vs []features.Vector) error
	// Now is the store's clock: the updated-at time of rows without one.
	Now() time.Time
}

// LoadSummary counts what a load did.
type LoadSummary struct {
	Loaded   int
	Rejected int
}

// LoadOptions configures LoadCSV and LoadParquet.
type LoadOptions struct {
	// Chunk is how many vectors go in one pipeline; default 1000.
	Chunk int
	// Now is the updated-at time of rows without one; default the store's
	// clock.
	Now time.Time
	// OnReject is told of every bad row (its line and reason); the load
	// goes on. When nil, bad rows are only counted.
	OnReject func(*RowError)
	// Progress, when set, is told the rows loaded and rejected so far
	// after each chunk.
	Progress func(loaded, rejected int)
}

// LoadCSV streams a CSV export into the store, in pipelined chunks. Each
// customer's write is atomic, so a load can be re-run safely. A bad row is
// rejected whole (never half-written) and reported; a bad header or an
// unreachable store stops the load.
func LoadCSV(ctx context.Context, s Store, r io.Reader, o LoadOptions) (LoadSummary, error) {
	o.defaults(s.Now)
	rd, err := NewReader(r, o.Now)
	if err != nil {
		return LoadSummary{}, err
	}
	return loadRows(ctx, s, rd.Next, o)
}

// defaults fills in the chunk and, given a clock, the load time.
func (o *LoadOptions) defaults(now func() time.Time) {
	if o.Chunk <= 0 {
		o.Chunk = 1000
	}
	if o.Now.IsZero() && now != nil {
		o.Now = now()
	}
}

// loadRows stores the vectors next returns, in chunks of o.Chunk, until
// io.EOF. Every loader shares it.
func loadRows(ctx context.Context, s Store, next func() (string, features.Vector, error), o LoadOptions) (LoadSummary, error) {
	var sum LoadSummary
	ids := make([]string, 0, o.Chunk)
	vs := make([]features.Vector, 0, o.Chunk)
	flush := func() error {
		if len(ids) == 0 {
			return nil
		}
		if err := s.PutMany(ctx, ids, vs); err != nil {
			return err
		}
		sum.Loaded += len(ids)
		ids, vs = ids[:0], vs[:0]
		if o.Progress != nil {
			o.Progress(sum.Loaded, sum.Rejected)
		}
		return nil
	}
	for {
		id, v, err := next()
		if err == io.EOF {
			break
		}
		var re *RowError
		if errors.As(err, &re) {
			sum.Rejected++
			if o.OnReject != nil {
				o.OnReject(re)
			}
			continue
		}
		if err != nil {
			return sum, err
		}
		ids = append(ids, id)
		vs = append(vs, v)
		if len(ids) == o.Chunk {
			if err := flush(); err != nil {
				return sum, fmt.Errorf("load: %w", err)
			}
		}
	}
	if err := flush(); err != nil {
		return sum, fmt.Errorf("load: %w", err)
	}
	return sum, nil
}
