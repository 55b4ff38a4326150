package model

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// probeCalls is how many times each probe is timed; the median counts.
const probeCalls = 9

// probe scores a batch of rows before the model takes traffic: every
// score must be a probability, and one row and the batch must each fit
// their budget (a budget of zero is not checked). Every problem is
// reported.
func (m *ONNX) probe(x []float32, budget, batchBudget time.Duration) error {
	n := len(x) / m.schemaN
	if n == 0 {
		return nil
	}
	out := make([]float32, n*m.products)
	var errs []error
	ctx := context.Background()
	// Every row alone first: a bad score names its row.
	bad := 0
	single := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		sc, err := m.Score(ctx, x[i*m.schemaN:(i+1)*m.schemaN], 1, out[i*m.products:(i+1)*m.products])
		single = append(single, time.Since(start))
		if err != nil {
			if bad++; bad <= 3 {
				errs = append(errs, fmt.Errorf("probe row %d: %w", i, err))
			}
			continue
		}
		sc.Release()
	}
	if bad > 3 {
		errs = append(errs, fmt.Errorf("%d of %d probe rows failed", bad, n))
	}
	if bad == 0 {
		batch := make([]time.Duration, 0, probeCalls)
		for range probeCalls {
			start := time.Now()
			sc, err := m.Score(ctx, x, n, out)
			batch = append(batch, time.Since(start))
			if err != nil {
				errs = append(errs, fmt.Errorf("probe batch of %d rows: %w", n, err))
				break
			}
			sc.Release()
		}
		if d := median(batch); batchBudget > 0 && d > batchBudget {
			errs = append(errs, fmt.Errorf("%w: a batch of %d rows takes %s, over the batch budget %s", ErrTooSlow, n, d, batchBudget))
		}
	}
	if d := median(single); budget > 0 && d > budget {
		errs = append(errs, fmt.Errorf("%w: one row takes %s, over the budget %s", ErrTooSlow, d, budget))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("model %s refused on its probe of %d rows:\n  %w", m.info.Version, n, err)
	}
	return nil
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
