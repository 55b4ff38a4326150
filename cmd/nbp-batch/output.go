package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

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

// progress rewrites one status line on a terminal, and prints a line
// every ten seconds otherwise.
type progress struct {
	w        io.Writer
	terminal bool
	start    time.Time
	last     time.Time
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

func (p *progress) update(ck batch.Checkpoint) {
	el := time.Since(p.start)
	rate := float64(ck.Customers) / el.Seconds()
	if p.terminal {
		fmt.Fprintf(p.w, "\r%s segment %d: %d customers, %d offers, %.0f customers/s ",
			el.Round(time.Second), ck.Segment, ck.Customers, ck.Rows, rate)
		return
	}
	if time.Since(p.last) >= 10*time.Second {
		p.last = time.Now()
		fmt.Fprintf(p.w, "progress: %d customers, %d offers, segment %d, %.0f customers/s\n", ck.Customers, ck.Rows, ck.Segment, rate)
	}
}

func (p *progress) done() {
	if p.terminal {
		fmt.Fprintln(p.w)
	}
}
