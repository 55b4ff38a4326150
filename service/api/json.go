package api

import (
	"strconv"

	"github.com/directops/nbp/service/internal/appendjson"
)

// The recommendation response is the hot path's one big allocation: it is
// written by hand, without reflection, with the same output as
// encoding/json (TestAppendJSONMatchesEncodingJSON holds it to that).

// AppendJSON appends the response as JSON.
func (r *RecommendationResponse) AppendJSON(b []byte) []byte {
	b = append(b, `{"customer_id":`...)
	b = appendjson.String(b, r.CustomerID)
	b = append(b, `,"channel":`...)
	b = appendjson.String(b, r.Channel)
	b = append(b, `,"decision_id":`...)
	b = appendjson.String(b, r.DecisionID)
	b = append(b, `,"model_version":`...)
	b = appendjson.String(b, r.ModelVersion)
	b = append(b, `,"catalog_version":`...)
	b = appendjson.String(b, r.CatalogVersion)
	b = append(b, `,"strategy":`...)
	b = appendjson.String(b, r.Strategy)
	b = append(b, `,"degraded":`...)
	b = strconv.AppendBool(b, r.Degraded)
	b = append(b, `,"degraded_reasons":`...)
	b = appendjson.Strings(b, r.DegradedReasons)
	b = append(b, `,"items":`...)
	if r.Items == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range r.Items {
			if i > 0 {
				b = append(b, ',')
			}
			b = r.Items[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func (it *ItemResponse) appendJSON(b []byte) []byte {
	b = append(b, `{"rank":`...)
	b = strconv.AppendInt(b, int64(it.Rank), 10)
	b = append(b, `,"product_id":`...)
	b = appendjson.String(b, it.ProductID)
	b = append(b, `,"name":`...)
	b = appendjson.String(b, it.Name)
	b = append(b, `,"category":`...)
	b = appendjson.String(b, it.Category)
	b = append(b, `,"risk_level":`...)
	if it.RiskLevel == nil {
		b = append(b, "null"...)
	} else {
		b = appendjson.String(b, *it.RiskLevel)
	}
	b = append(b, `,"propensity":`...)
	b = appendjson.Float(b, it.Propensity)
	b = append(b, `,"priority":`...)
	b = appendjson.Float(b, it.Priority)
	b = append(b, `,"scored_by":`...)
	b = appendjson.String(b, it.ScoredBy)
	b = append(b, `,"copy":{"title":`...)
	b = appendjson.String(b, it.Copy.Title)
	b = append(b, `,"body":`...)
	b = appendjson.String(b, it.Copy.Body)
	b = append(b, `,"cta":`...)
	b = appendjson.String(b, it.Copy.CTA)
	b = append(b, `,"disclaimer":`...)
	b = appendjson.String(b, it.Copy.Disclaimer)
	b = append(b, `},"reasons":`...)
	if it.Reasons == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, r := range it.Reasons {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"code":`...)
			b = appendjson.String(b, r.Code)
			b = append(b, `,"text":`...)
			b = appendjson.String(b, r.Text)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}
