package service

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// The recommendation response is the hot path's one big allocation: it is
// written by hand, without reflection, with the same output as
// encoding/json (TestAppendJSONMatchesEncodingJSON holds it to that).

// AppendJSON appends the response as JSON.
func (r *RecommendationResponse) AppendJSON(b []byte) []byte {
	b = append(b, `{"customer_id":`...)
	b = appendString(b, r.CustomerID)
	b = append(b, `,"channel":`...)
	b = appendString(b, r.Channel)
	b = append(b, `,"decision_id":`...)
	b = appendString(b, r.DecisionID)
	b = append(b, `,"model_version":`...)
	b = appendString(b, r.ModelVersion)
	b = append(b, `,"catalog_version":`...)
	b = appendString(b, r.CatalogVersion)
	b = append(b, `,"strategy":`...)
	b = appendString(b, r.Strategy)
	b = append(b, `,"degraded":`...)
	b = strconv.AppendBool(b, r.Degraded)
	b = append(b, `,"degraded_reasons":`...)
	b = appendStrings(b, r.DegradedReasons)
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
	b = appendString(b, it.ProductID)
	b = append(b, `,"name":`...)
	b = appendString(b, it.Name)
	b = append(b, `,"category":`...)
	b = appendString(b, it.Category)
	b = append(b, `,"risk_level":`...)
	if it.RiskLevel == nil {
		b = append(b, "null"...)
	} else {
		b = appendString(b, *it.RiskLevel)
	}
	b = append(b, `,"propensity":`...)
	b = appendFloat(b, it.Propensity)
	b = append(b, `,"priority":`...)
	b = appendFloat(b, it.Priority)
	b = append(b, `,"copy":{"title":`...)
	b = appendString(b, it.Copy.Title)
	b = append(b, `,"body":`...)
	b = appendString(b, it.Copy.Body)
	b = append(b, `,"cta":`...)
	b = appendString(b, it.Copy.CTA)
	b = append(b, `,"disclaimer":`...)
	b = appendString(b, it.Copy.Disclaimer)
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
			b = appendString(b, r.Code)
			b = append(b, `,"text":`...)
			b = appendString(b, r.Text)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendFloat writes a float as encoding/json does: the shortest
// representation, exponent form outside [1e-6, 1e21).
func appendFloat(b []byte, f float64) []byte {
	abs := f
	if abs < 0 {
		abs = -abs
	}
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// encoding/json turns e-07 into e-7.
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendString writes a JSON string with encoding/json's escaping (HTML
// characters, control characters, invalid UTF-8 and U+2028/9 included).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AppendJSON appends the audit record as JSON, as encoding/json would.
func (r *AuditRecord) AppendJSON(b []byte) []byte {
	b = append(b, `{"decision_id":`...)
	b = appendString(b, r.DecisionID)
	b = append(b, `,"at":"`...)
	b = r.At.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","channel":`...)
	b = appendString(b, r.Channel)
	b = append(b, `,"customer_hash":`...)
	b = appendString(b, r.CustomerHash)
	b = append(b, `,"model_version":`...)
	b = appendString(b, r.ModelVersion)
	b = append(b, `,"catalog_version":`...)
	b = appendString(b, r.CatalogVersion)
	b = append(b, `,"config_version":`...)
	b = appendString(b, r.ConfigVersion)
	b = append(b, `,"strategy":`...)
	b = appendString(b, r.Strategy)
	b = append(b, `,"degraded":`...)
	b = strconv.AppendBool(b, r.Degraded)
	b = append(b, `,"degraded_reasons":`...)
	b = appendStrings(b, r.DegradedReasons)
	b = append(b, `,"feature_status":`...)
	b = appendString(b, r.FeatureStatus)
	if r.FeaturesHash != "" {
		b = append(b, `,"features_hash":`...)
		b = appendString(b, r.FeaturesHash)
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
			b = appendString(b, it.ProductID)
			b = append(b, `,"propensity":`...)
			b = appendFloat(b, it.Propensity)
			b = append(b, `,"priority":`...)
			b = appendFloat(b, it.Priority)
			b = append(b, `,"reasons":`...)
			b = appendStrings(b, it.Reasons)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}
