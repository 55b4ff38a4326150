package audit

import (
	"strconv"
	"time"

	"github.com/directops/nbp/service/internal/appendjson"
)

// AppendJSON appends the audit record as JSON, as encoding/json would.
func (r *Record) AppendJSON(b []byte) []byte {
	b = append(b, `{"decision_id":`...)
	b = appendjson.String(b, r.DecisionID)
	b = append(b, `,"at":"`...)
	b = r.At.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","channel":`...)
	b = appendjson.String(b, r.Channel)
	b = append(b, `,"customer_hash":`...)
	b = appendjson.String(b, r.CustomerHash)
	b = append(b, `,"model_version":`...)
	b = appendjson.String(b, r.ModelVersion)
	b = append(b, `,"catalog_version":`...)
	b = appendjson.String(b, r.CatalogVersion)
	b = append(b, `,"config_version":`...)
	b = appendjson.String(b, r.ConfigVersion)
	b = append(b, `,"strategy":`...)
	b = appendjson.String(b, r.Strategy)
	b = append(b, `,"degraded":`...)
	b = strconv.AppendBool(b, r.Degraded)
	b = append(b, `,"degraded_reasons":`...)
	b = appendjson.Strings(b, r.DegradedReasons)
	b = append(b, `,"feature_status":`...)
	b = appendjson.String(b, r.FeatureStatus)
	if r.FeaturesHash != "" {
		b = append(b, `,"features_hash":`...)
		b = appendjson.String(b, r.FeaturesHash)
	}
	b = append(b, `,"items":`...)
	if r.Items == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, it := range r.Items {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"rank":`...)
			b = strconv.AppendInt(b, int64(it.Rank), 10)
			b = append(b, `,"product_id":`...)
			b = appendjson.String(b, it.ProductID)
			b = append(b, `,"propensity":`...)
			b = appendjson.Float(b, it.Propensity)
			b = append(b, `,"priority":`...)
			b = appendjson.Float(b, it.Priority)
			b = append(b, `,"reasons":`...)
			b = appendjson.Strings(b, it.Reasons)
			if it.ScoredBy != "" { // records kept before it was recorded have none
				b = append(b, `,"scored_by":`...)
				b = appendjson.String(b, it.ScoredBy)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if r.Features != nil {
		b = append(b, `,"features":{"schema":`...)
		b = strconv.AppendInt(b, int64(r.Features.Schema), 10)
		b = append(b, `,"values":`...)
		b = r.Features.Values.appendJSON(b)
		b = append(b, '}')
	}
	return append(b, '}')
}
