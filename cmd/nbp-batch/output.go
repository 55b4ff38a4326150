package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	bar "github.com/directops/nbp/cmd/internal/progress"
	"github.com/directops/nbp/service/batch"
)

// rowWriter is a batch output format.
type rowWriter interface {
	Write(rows []batch.Row) error
	Close() error
}

// filePart writes a part to a temporary file and renames it into place
// on Commit, so a part on disk is always complete.
type filePart struct {
	f    *os.File
	w    rowWriter
	tmp  string
	path string
}

func openPart(dir, name, format string) (*filePart, error) {
	path := filepath.Join(dir, name+"."+format)
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return nil, err
	}
	var w rowWriter
	if format == "csv" {
		w = batch.NewCSVWriter(f)
	} else {
		w = batch.NewParquetWriter(f)
	}
	return &filePart{f: f, w: w, tmp: tmp, path: path}, nil
}

func (p *filePart) Write(rows []batch.Row) error { return p.w.Write(rows) }

func (p *filePart) Commit() error {
	if err := p.w.Close(); err != nil {
		p.Abort()
		return err
	}
	if err := p.f.Sync(); err != nil {
		p.Abort()
		return err
	}
	if err := p.f.Close(); err != nil {
		os.Remove(p.tmp)
		return err
	}
	return os.Rename(p.tmp, p.path)
}

func (p *filePart) Abort() {
	p.f.Close()
	os.Remove(p.tmp)
}

// progress shows the shard's customers done, the rate and the time left
// on a terminal (package progress), and nothing otherwise: the metrics serve
// there.
type progress struct {
	w   io.Writer
	bar *bar.Bar
}

func newProgress(w io.Writer) *progress { return &progress{w: w} }

// size is told the shard's customers as the run starts.
func (p *progress) size(n int64) {
	p.bar = bar.New(p.w, n, "customers", "scoring")
}

func (p *progress) update(ck batch.Checkpoint) {
	p.bar.Describe(fmt.Sprintf("segment %d, %d offers", ck.Segment, ck.Rows))
	p.bar.Set(int64(ck.Customers))
}

func (p *progress) done() { p.bar.Finish() }
