package service_test

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/model"
	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/api"
)

// Every response the tests see is checked against the OpenAPI document by
// package apitest: through do, postEvents, doKey and get (apitest.Test),
// the clients of the real-listener tests (apitest.Transport) and the raw
// connections of the fault suite (apitest.CheckRaw).

func TestOpenAPIDocumentIsServed(t *testing.T) {
	want, err := os.ReadFile("api/openapi.json") // the file, not the embedded copy
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{})
	status, header, body := doHeader(t, newServer(t, e), "GET", "/openapi.json")
	if status != 200 || !bytes.Equal(body, want) || !strings.HasPrefix(header.Get("Content-Type"), "application/json") {
		t.Fatalf("/openapi.json: %d %s, %d bytes, want the %d of openapi.json", status, header.Get("Content-Type"), len(body), len(want))
	}
}

// TestOpenAPIEnumsMatchTheCode: every enum the document names is the list
// the Go code accepts or sends.
func TestOpenAPIEnumsMatchTheCode(t *testing.T) {
	var doc any
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	channels := catalog.ChannelNames()
	var strategies []string
	for _, st := range model.Strategies() {
		strategies = append(strategies, string(st))
	}
	want := map[string][]string{
		"channel":          channels[:],
		"strategy":         strategies,
		"degraded_reasons": {service.ReasonFeaturesUnavailable, service.ReasonFeaturesStale, service.ReasonFeaturesCorrupt, service.ReasonModelFallback},
		"type":             {features.EventImpression, features.EventClick, features.EventConversion, features.EventDismiss},
		"feature_status":   {features.Found.String(), features.Stale.String(), features.NotFound.String(), features.Corrupt.String(), service.FeatureStatusUnavailable},
	}
	found := map[string]int{}
	// walk visits every schema; name is the property or parameter it
	// describes.
	var walk func(name string, v any)
	walk = func(name string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if enum, ok := v["enum"].([]any); ok {
				if w, known := want[name]; known {
					found[name]++
					var got []string
					for _, x := range enum {
						s, _ := x.(string)
						got = append(got, s)
					}
					if diff := cmp.Diff(w, got); diff != "" {
						t.Errorf("enum of %s (-code +openapi.json):\n%s", name, diff)
					}
				}
			}
			if n, ok := v["name"].(string); ok {
				if s, ok := v["schema"]; ok {
					walk(n, s)
				}
			}
			for k, x := range v {
				switch k {
				case "properties":
					for prop, s := range x.(map[string]any) {
						walk(prop, s)
					}
				case "items":
					walk(name, x)
				default:
					walk(k, x)
				}
			}
		case []any:
			for _, x := range v {
				walk(name, x)
			}
		}
	}
	walk("", doc)
	for name := range want {
		if found[name] == 0 {
			t.Errorf("the document has no enum for %s", name)
		}
	}
}
