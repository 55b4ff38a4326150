package service_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/directops/nbp/service"
)

var (
	apiOnce   sync.Once
	apiRouter routers.Router
	apiErr    error
)

func openAPIRouter() (routers.Router, error) {
	apiOnce.Do(func() {
		doc, err := openapi3.NewLoader().LoadFromData(service.OpenAPI)
		if err != nil {
			apiErr = err
			return
		}
		if apiErr = doc.Validate(context.Background()); apiErr != nil {
			return
		}
		apiRouter, apiErr = legacy.NewRouter(doc)
	})
	return apiRouter, apiErr
}

// checkAgainstOpenAPI validates a response the tests saw against the
// OpenAPI document: every documented route, status and body.
func checkAgainstOpenAPI(t testing.TB, method, target string, reqBody []byte, status int, header http.Header, body []byte) {
	t.Helper()
	router, err := openAPIRouter()
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	req, err := http.NewRequest(method, "http://nbp"+target, bytes.NewReader(reqBody))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	route, params, err := router.FindRoute(req)
	if err != nil {
		return // not a documented route (404, 405): the error shape is checked by the caller
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{ExcludeRequestBody: true, ExcludeRequestQueryParams: true}}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: status, Header: header,
		Body: io.NopCloser(bytes.NewReader(body)),
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%s %s -> %d does not match openapi.json: %v\n%s", method, target, status, err, body)
	}
}

func TestOpenAPIDocumentIsServed(t *testing.T) {
	if _, err := openAPIRouter(); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{})
	status, body := do(t, newServer(t, e), "GET", "/openapi.json")
	if status != 200 || !bytes.Equal(body, service.OpenAPI) {
		t.Fatalf("/openapi.json: %d", status)
	}
}
