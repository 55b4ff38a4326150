package progress

import (
	"bytes"
	"os"
	"testing"
)

// Off a terminal a bar shows nothing, and a nil bar takes every call.
func TestNothingOffATerminal(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, 100, "customers", "scoring")
	if b != nil {
		t.Fatal("a bar on a buffer")
	}
	b.Describe("x")
	b.Set(50)
	b.Clear()
	b.Finish()
	if buf.Len() != 0 {
		t.Errorf("printed %q", buf.String())
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if Terminal(f) || New(f, 1, "bytes", "") != nil {
		t.Error("a regular file taken for a terminal")
	}
}
