package audit

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/directops/nbp/service"
)

// spillRecord returns a record and its JSON.
func spillRecord(t testing.TB, i int) (string, []byte) {
	t.Helper()
	r := Record{DecisionID: service.NewDecisionID(time.Unix(1_790_000_000+int64(i), 0)), At: time.Unix(1_790_000_000+int64(i), 0).UTC(), Channel: "app_feed",
		CustomerHash: strings.Repeat("ab", 16), Strategy: "model", DegradedReasons: []string{},
		Items: []Item{{Rank: 1, ProductID: "WM_CASH", Propensity: 0.25, Priority: 0.5, Reasons: []string{"推荐"}}}}
	return r.DecisionID, r.AppendJSON(nil)
}

// spillLines returns the spill lines of n records, and their ids.
func spillLines(t testing.TB, n int) ([]byte, []string) {
	var b []byte
	var ids []string
	for i := range n {
		id, v := spillRecord(t, i)
		b = appendSpillLine(b, id, v)
		ids = append(ids, id)
	}
	return b, ids
}

// replayAll reads every record of the spill in chunks of n, as the writer
// would, marking each chunk done.
func replayAll(t *testing.T, s *spill, n int) (ids []string, bad int) {
	t.Helper()
	for range 10_000 {
		if s.empty() {
			return ids, bad
		}
		c, err := s.readChunk(n)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.ids) > n {
			t.Fatalf("a chunk of %d records, asked for %d", len(c.ids), n)
		}
		for _, id := range c.ids {
			ids = append(ids, string(id))
		}
		bad += c.bad
		if err := s.done(c); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("the spill never empties")
	return nil, 0
}

// spillFilesOf lists dir's spill files, failing the test on an error.
func spillFilesOf(t *testing.T, dir string) []string {
	t.Helper()
	names, err := spillFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestAuditSpillRoundTrip: what is appended is read back once, in order,
// across files and chunk sizes, and the files are gone once replayed.
func TestAuditSpillRoundTrip(t *testing.T) {
	for _, chunk := range []int{1, 7, 256} {
		dir := t.TempDir()
		s, err := openSpill(dir, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, n := range []int{3, 10, 1} {
			b, ids := spillLines(t, n)
			if err := s.appendLines(b); err != nil {
				t.Fatal(err)
			}
			want = append(want, ids...)
		}
		if err := s.seal(); err != nil {
			t.Fatal(err)
		}
		b, ids := spillLines(t, 5) // a second file
		if err := s.appendLines(b); err != nil {
			t.Fatal(err)
		}
		want = append(want, ids...)
		if got := len(spillFilesOf(t, dir)); got != 2 {
			t.Fatalf("chunk %d: %d files, want 2", chunk, got)
		}
		got, bad := replayAll(t, s, chunk)
		if bad != 0 || !slices.Equal(got, want) {
			t.Fatalf("chunk %d: read %d records (%d bad), want %d in order", chunk, len(got), bad, len(want))
		}
		if f := spillFilesOf(t, dir); len(f) != 0 || s.size != 0 {
			t.Fatalf("chunk %d: %v left, size %d", chunk, f, s.size)
		}
		if err := s.close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAuditSpillSurvivesTheProcess: files left by a closed spill, one of
// them torn by a crash in its last line, are replayed by the next one:
// every whole record, and the torn line counted.
func TestAuditSpillSurvivesTheProcess(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpill(dir, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	b, want := spillLines(t, 20)
	if err := s.appendLines(b); err != nil {
		t.Fatal(err)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	// The crash: half a line at the end of the file.
	name := spillFilesOf(t, dir)[0]
	torn, _ := spillLines(t, 1)
	f, err := os.OpenFile(name, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(torn[:len(torn)/2]); err != nil {
		t.Fatal(err)
	}
	f.Close()

	next, err := openSpill(dir, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	defer next.close()
	if next.empty() || next.size == 0 {
		t.Fatal("the next process sees nothing to replay")
	}
	got, bad := replayAll(t, next, 8)
	if !slices.Equal(got, want) || bad != 1 {
		t.Fatalf("replayed %d records and %d torn lines, want %d and 1", len(got), bad, len(want))
	}
}

// TestAuditSpillIsOneProcess: a second spill on a directory in use is
// refused; once the first is closed, it opens.
func TestAuditSpillIsOneProcess(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpill(dir, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openSpill(dir, 1<<30); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("a second spill on the same directory: %v", err)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	again, err := openSpill(dir, 1<<30)
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	again.close()
}

// TestAuditSpillFull: a batch that would pass the limit is refused whole,
// and what is in stays readable.
func TestAuditSpillFull(t *testing.T) {
	dir := t.TempDir()
	b, want := spillLines(t, 4)
	s, err := openSpill(dir, int64(len(spillHeader)+len(b)+10))
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if err := s.appendLines(b); err != nil {
		t.Fatal(err)
	}
	more, _ := spillLines(t, 1)
	if err := s.appendLines(more); !errors.Is(err, errSpillFull) {
		t.Fatalf("past the limit: %v", err)
	}
	got, bad := replayAll(t, s, 256)
	if !slices.Equal(got, want) || bad != 0 {
		t.Fatalf("replayed %d (%d bad), want %d", len(got), bad, len(want))
	}
	if err := s.appendLines(more); err != nil {
		t.Fatalf("once replayed, there is room again: %v", err)
	}
}

// TestAuditSpillSetsAsideWhatItCannotRead: a file of another format is
// renamed, not replayed at every wake-up, and the next file still is.
func TestAuditSpillSetsAsideWhatItCannotRead(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "audit-1.spill"), []byte("something else\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := openSpill(dir, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	b, want := spillLines(t, 3)
	if err := s.appendLines(b); err != nil {
		t.Fatal(err)
	}
	if _, err := s.readChunk(10); err == nil {
		t.Fatal("a file of another format read")
	}
	s.setAside()
	got, bad := replayAll(t, s, 10)
	if !slices.Equal(got, want) || bad != 0 {
		t.Fatalf("replayed %d (%d bad), want %d", len(got), bad, len(want))
	}
	if _, err := os.Stat(filepath.Join(dir, "audit-1.spill.unreadable")); err != nil {
		t.Fatalf("not set aside: %v", err)
	}
}

// FuzzParseSpillLine: whatever a spill file holds, parsing never panics,
// and a line it accepts is exactly the spill line of what it returns: a
// record of that decision id.
func FuzzParseSpillLine(f *testing.F) {
	id, v := spillRecord(f, 0)
	line := appendSpillLine(nil, id, v)
	f.Add(line)
	f.Add(line[:len(line)-1])
	f.Add(line[:len(line)/2])
	f.Add(append([]byte("0"), line...))
	f.Add([]byte(id + " {}\n"))
	f.Add([]byte(id + ` {"decision_id":"` + id + `"}` + "\n"))
	f.Add([]byte(id + ` {"decision_id":"` + id + `"} ` + "\n"))
	f.Add([]byte(spillHeader))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, line []byte) {
		gid, gv, ok := parseSpillLine(line)
		if !ok {
			return
		}
		if !service.ValidDecisionID(string(gid)) {
			t.Fatalf("accepted the id %q", gid)
		}
		if back := appendSpillLine(nil, string(gid), gv); !bytes.Equal(back, line) {
			t.Fatalf("accepted %q, which reads back as %q", line, back)
		}
	})
}
