// Package apitest checks HTTP responses against the service's OpenAPI
// document (api.OpenAPI), for tests: one response at a time (Check,
// Validate), what a raw connection read (CheckRaw), every response through
// an http.Client (Transport, Client), or the answers of a fiber app served
// without a network (Test).
//
// A response of a documented operation must have a status the document
// lists for it, and the headers and body documented for that status. A
// request no operation matches (an unknown path: 404; a known path with
// another method: 405) has nothing to be checked against but the error
// shape: its 4xx or 5xx must be JSON in the document's Error schema, and a
// success from such a path means the document is missing a route.
package apitest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/gofiber/fiber/v2"

	"github.com/directops/nbp/service/api"
)

// document is the OpenAPI document, ready to check responses with.
type document struct {
	router routers.Router
	errors *openapi3.Schema // the Error schema: every error's body
}

// load loads and validates the OpenAPI document, once.
var load = sync.OnceValues(func() (*document, error) {
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI())
	if err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	ref := doc.Components.Schemas["Error"]
	if ref == nil || ref.Value == nil {
		return nil, errors.New("openapi.json: no Error schema")
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	return &document{router: router, errors: ref.Value}, nil
})

// Validate returns how a response to method and target (a path with its
// query, as sent) differs from the OpenAPI document, or nil when it
// matches. reqBody is the request's body, if any; requests themselves are
// not checked. A HEAD response has no body to check and always matches. An
// empty target stands for a request the server never read whole (a raw
// connection's, stalled or malformed): no operation answers it, so the
// answer must be an error.
func Validate(method, target string, reqBody []byte, status int, header http.Header, body []byte) error {
	doc, err := load()
	if err != nil {
		return err
	}
	if method == http.MethodHead {
		return nil
	}
	if target == "" {
		return doc.checkUnrouted(status, header, body)
	}
	req, err := http.NewRequest(method, "http://nbp"+target, bytes.NewReader(reqBody))
	if err != nil {
		// Not a request a client could send (a raw one, cut short): no
		// operation could have answered it.
		return doc.checkUnrouted(status, header, body)
	}
	req.Header.Set("Content-Type", "application/json")
	route, params, err := doc.router.FindRoute(req)
	if err != nil {
		return doc.checkUnrouted(status, header, body)
	}
	opts := &openapi3filter.Options{ExcludeRequestBody: true, ExcludeRequestQueryParams: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	check := &openapi3filter.Options{IncludeResponseStatus: true}
	check.WithCustomSchemaErrorFunc(schemaError)
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: status, Header: header,
		Body: io.NopCloser(bytes.NewReader(body)), Options: check,
	}
	return openapi3filter.ValidateResponse(context.Background(), out)
}

// checkUnrouted checks the answer to a request no operation matches: an
// error, in the Error schema.
func (d *document) checkUnrouted(status int, header http.Header, body []byte) error {
	if status < 400 {
		return fmt.Errorf("status %d from a route openapi.json does not document", status)
	}
	ct := header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return fmt.Errorf("error %d with content type %q, want application/json", status, ct)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("error %d: body is not JSON: %w", status, err)
	}
	if err := d.errors.VisitJSON(v, openapi3.VisitAsResponse(), openapi3.SetSchemaErrorMessageCustomizer(schemaError)); err != nil {
		return fmt.Errorf("error %d: body does not match the Error schema: %w", status, err)
	}
	return nil
}

// schemaError says where a body breaks its schema and how, without the
// schema and the value, which the failure message would repeat at length.
func schemaError(err *openapi3.SchemaError) string {
	return fmt.Sprintf("at /%s: %s", strings.Join(err.JSONPointer(), "/"), err.Reason)
}

// Check fails t unless the response matches the OpenAPI document (see
// Validate). It only reports (t.Errorf), so it may run on any goroutine.
func Check(t testing.TB, method, target string, reqBody []byte, status int, header http.Header, body []byte) {
	t.Helper()
	if err := Validate(method, target, reqBody, status, header, body); err != nil {
		t.Errorf("%s %s -> %d does not match openapi.json: %v\n%s", method, target, status, err, excerpt(body))
	}
}

// excerpt is the start of a body, for a failure message.
func excerpt(body []byte) []byte {
	const n = 2000
	if len(body) <= n {
		return body
	}
	return append(body[:n:n], "..."...)
}

// CheckRaw checks each whole response in raw, the bytes read from a
// connection (pipelined answers, perhaps the start of one more), as an
// answer to method and target (Check), and returns how many it checked.
// It stops at the first response cut short.
func CheckRaw(t testing.TB, method, target string, raw []byte) int {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(raw))
	n := 0
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return n
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return n
		}
		Check(t, method, target, nil, resp.StatusCode, resp.Header, body)
		n++
	}
}

// Transport returns a RoundTripper that sends requests with base
// (http.DefaultTransport when nil) and checks every whole response
// against the OpenAPI document (Check): it reads the body, checks it and
// puts it back, so the caller reads it as sent. A response whose body
// cannot be read to its end (the connection cut) is passed on unchecked,
// failing where it failed. Closing its idle connections closes base's.
func Transport(t testing.TB, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{t: t, base: base}
}

type transport struct {
	t    testing.TB
	base http.RoundTripper
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	tr.t.Helper()
	resp, err := tr.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), errReader{err}))
		return resp, nil
	}
	Check(tr.t, req.Method, req.URL.RequestURI(), nil, resp.StatusCode, resp.Header, body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// CloseIdleConnections closes base's idle connections, for
// http.Client.CloseIdleConnections.
func (tr *transport) CloseIdleConnections() {
	if c, ok := tr.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// errReader fails every read with err.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// Client returns an HTTP client of its own (a clone of
// http.DefaultTransport's settings) whose every response is checked
// (Transport). Its idle connections are closed when the test ends.
func Client(t testing.TB) *http.Client {
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	return &http.Client{Transport: Transport(t, base)}
}

// Test serves req with app.Test, without a network, and checks the
// response (Transport); its body is read, and can be read again. A
// timeout of 0 or less waits for ever.
func Test(t testing.TB, app *fiber.App, req *http.Request, timeout time.Duration) (*http.Response, error) {
	t.Helper()
	return Transport(t, appTransport{app: app, timeout: timeout}).RoundTrip(req)
}

// appTransport serves requests with a fiber app's Test method.
type appTransport struct {
	app     *fiber.App
	timeout time.Duration
}

func (a appTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ms := -1
	if a.timeout > 0 {
		ms = int(a.timeout.Milliseconds())
	}
	return a.app.Test(req, ms)
}
