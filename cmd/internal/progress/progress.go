// Package progress shows a long job's progress on a terminal: done, rate
// and time left on one line that rewrites itself. Off a terminal it
// prints nothing: logs and metrics serve there.
package progress

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Terminal reports whether w is a terminal.
func Terminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Bar is a progress line, safe for concurrent use; a nil *Bar shows
// nothing, so callers need not check.
type Bar struct {
	bar *progressbar.ProgressBar
}

// New returns a bar of total units (-1 when unknown) named what ("customers",
// "bytes") on w, or nil when w is not a terminal.
func New(w io.Writer, total int64, what, description string) *Bar {
	if !Terminal(w) {
		return nil
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(description),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionThrottle(200 * time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionOnCompletion(func() { _, _ = io.WriteString(w, "\n") }),
	}
	if what == "bytes" {
		opts = append(opts, progressbar.OptionShowBytes(true))
	} else {
		opts = append(opts, progressbar.OptionShowIts(), progressbar.OptionSetItsString(what))
	}
	return &Bar{bar: progressbar.NewOptions64(total, opts...)}
}

// Set moves the bar to n units done.
func (b *Bar) Set(n int64) {
	if b != nil {
		_ = b.bar.Set64(n)
	}
}

// Describe replaces the text before the bar.
func (b *Bar) Describe(s string) {
	if b != nil {
		b.bar.Describe(s)
	}
}

// Clear blanks the line, so that a message can be printed on it; the bar
// comes back at its next move.
func (b *Bar) Clear() {
	if b != nil {
		_ = b.bar.Clear()
	}
}

// Finish ends the line.
func (b *Bar) Finish() {
	if b != nil {
		_ = b.bar.Finish()
	}
}
