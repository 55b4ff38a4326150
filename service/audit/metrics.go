package audit

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/metric"

	"github.com/directops/nbp/service/telemetry"
)

// Observe publishes what became of the audit records Redis could not
// take at once: spilled, replayed from the spill, lost; and the bytes
// waiting in the spill.
func Observe(mp metric.MeterProvider, a *Log) error {
	m := telemetry.Meter(mp)
	var errs []error
	counter := func(name, description string, v func(Stats) int64) {
		_, err := m.Int64ObservableCounter(name, metric.WithDescription(description), metric.WithUnit("{record}"),
			metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
				o.Observe(v(a.Stats()))
				return nil
			}))
		errs = append(errs, err)
	}
	counter("nbp.audit.records.spilled", "Audit records written to the spill directory while Redis could not take them.",
		func(s Stats) int64 { return s.Spilled })
	counter("nbp.audit.records.replayed", "Audit records written from the spill directory to Redis once it could take them.",
		func(s Stats) int64 { return s.Replayed })
	counter("nbp.audit.records.lost", "Audit records never written: Redis failing with no spill directory, the spill full, the queue full, or a line torn by a crash.",
		func(s Stats) int64 { return s.Lost })
	_, err := m.Int64ObservableGauge("nbp.audit.spill.size", metric.WithDescription("Bytes of audit records waiting in the spill directory."),
		metric.WithUnit("By"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(a.Stats().SpillBytes)
			return nil
		}))
	return errors.Join(append(errs, err)...)
}
