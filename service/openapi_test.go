package service_test

import (
	"bytes"
	"testing"

	"github.com/directops/nbp/service"
)

// Every response the tests see is checked against the OpenAPI document by
// package apitest: through do, postEvents, doKey and get (apitest.Test),
// the clients of the real-listener tests (apitest.Transport) and the raw
// connections of the fault suite (apitest.CheckRaw).

func TestOpenAPIDocumentIsServed(t *testing.T) {
	e := newEnv(t, envOptions{})
	status, body := do(t, newServer(t, e), "GET", "/openapi.json")
	if status != 200 || !bytes.Equal(body, service.OpenAPI) {
		t.Fatalf("/openapi.json: %d", status)
	}
}
