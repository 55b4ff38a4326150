package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/directops/nbp/service"
)

// An audit spill keeps the audit records Redis could not take, in files
// under a directory, until the audit writer can put them into Redis. It
// belongs to the writer's goroutine: nothing in it is safe for concurrent
// use.
//
// A spill file is written by one process and never appended to by
// another: a process starts a file of its own the first time it spills,
// and seals it (closes it, to be replayed) before it replays it. The files
// a previous process left are replayed first. Each file is a header line,
// then one line a record:
//
//	nbp-audit-spill 1
//	<decision id> <the record as JSON>
//
// A record is written whole or not at all: a batch that cannot be written
// whole is cut off again. Only a crash can leave the last line of a file
// torn; replay counts such a line lost and goes on. Replay writes each
// record with HSET under its decision id, so writing a record twice (a
// replay cut short and resumed) changes nothing.
type spill struct {
	dir  string
	max  int64    // bytes the files may hold in all
	lock *os.File // held, locked, while the spill is open

	cur     *os.File // the file being appended; nil when none
	curName string
	curSize int64

	synced time.Time // when cur was last synced to disk

	pending []string // sealed files to replay, oldest first
	size    int64    // bytes in every file, cur included
	off     int64    // replay position in pending[0]
}

// spillHeader opens every spill file: the format and its version.
const spillHeader = "nbp-audit-spill 1\n"

// spillSyncEvery is the longest a spilled record stays in the page cache
// only: a process that dies leaves it to the next one anyway, and a
// machine that crashes loses the records queued in memory too.
const spillSyncEvery = 100 * time.Millisecond

// errSpillFull is returned when a batch would take the spill past its
// size limit.
var errSpillFull = errors.New("audit spill full")

// openSpill opens dir (creating it), locks it against other
// processes, and finds the files a previous process left there.
func openSpill(dir string, max int64) (*spill, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit spill: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit spill: %w", err)
	}
	if err := lockFile(lock); err != nil {
		lock.Close()
		return nil, fmt.Errorf("audit spill %s: in use by another process (%w): give each process a directory of its own", dir, err)
	}
	s := &spill{dir: dir, max: max, lock: lock}
	names, err := spillFiles(dir)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("audit spill: %w", err)
	}
	for _, n := range names {
		fi, err := os.Stat(n)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("audit spill: %w", err)
		}
		s.pending = append(s.pending, n)
		s.size += fi.Size()
	}
	return s, nil
}

// spillFiles lists the spill files in dir, oldest first (they are named
// by their creation time).
func spillFiles(dir string) ([]string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "audit-*.spill"))
	slices.Sort(names)
	return names, err
}

// empty reports whether no record waits in the spill.
func (s *spill) empty() bool { return s.cur == nil && len(s.pending) == 0 }

// appendLines appends lines (whole spill lines, each ending in '\n') to
// the current file, starting one when there is none; it syncs the file
// every spillSyncEvery. On an error nothing of lines is left in the file.
func (s *spill) appendLines(lines []byte) error {
	if s.size+int64(len(lines)) > s.max {
		return errSpillFull
	}
	if s.cur == nil {
		name := filepath.Join(s.dir, "audit-"+strconv.FormatInt(time.Now().UnixNano(), 10)+".spill")
		f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("audit spill: %w", err)
		}
		if _, err := f.WriteString(spillHeader); err != nil {
			f.Close()
			os.Remove(name)
			return fmt.Errorf("audit spill: %w", err)
		}
		s.cur, s.curName, s.curSize = f, name, int64(len(spillHeader))
		s.size += s.curSize
	}
	_, err := s.cur.Write(lines)
	if now := time.Now(); err == nil && now.Sub(s.synced) >= spillSyncEvery {
		err = s.cur.Sync()
		s.synced = now
	}
	if err != nil {
		// Cut off what was written of the batch (a full disk writes
		// part of it), so that no record is left half-written.
		if terr := s.cur.Truncate(s.curSize); terr != nil {
			err = errors.Join(err, terr)
		}
		return fmt.Errorf("audit spill: %w", err)
	}
	s.curSize += int64(len(lines))
	s.size += int64(len(lines))
	return nil
}

// seal closes the current file and queues it for replay.
func (s *spill) seal() error {
	if s.cur == nil {
		return nil
	}
	err := errors.Join(s.cur.Sync(), s.cur.Close())
	s.pending = append(s.pending, s.curName)
	s.cur, s.curName, s.curSize = nil, "", 0
	if err != nil {
		return fmt.Errorf("audit spill: %w", err)
	}
	return nil
}

// spillChunk is up to n records of a spill file, read from one position.
type spillChunk struct {
	ids, values [][]byte
	bad         int   // lines that are not records (a torn last line)
	next        int64 // the position after the chunk
	eof         bool  // the chunk ends the file
}

// readChunk reads up to n records of the oldest pending file, from the
// replay position. It seals the current file first when nothing else is
// pending.
func (s *spill) readChunk(n int) (spillChunk, error) {
	if len(s.pending) == 0 {
		if err := s.seal(); err != nil {
			return spillChunk{}, err
		}
		if len(s.pending) == 0 {
			return spillChunk{eof: true}, nil
		}
	}
	f, err := os.Open(s.pending[0])
	if err != nil {
		return spillChunk{}, fmt.Errorf("audit spill: %w", err)
	}
	defer f.Close()
	c := spillChunk{next: s.off}
	if s.off == 0 {
		// The header: a file of another format is not replayed.
		head := make([]byte, len(spillHeader))
		if _, err := io.ReadFull(f, head); err != nil || string(head) != spillHeader {
			return spillChunk{}, fmt.Errorf("audit spill %s: not a spill file of this version", filepath.Base(s.pending[0]))
		}
		c.next = int64(len(spillHeader))
	} else if _, err := f.Seek(s.off, io.SeekStart); err != nil {
		return spillChunk{}, fmt.Errorf("audit spill: %w", err)
	}
	br := bufio.NewReaderSize(f, 64<<10)
	for len(c.ids) < n {
		line, err := br.ReadBytes('\n')
		c.next += int64(len(line))
		if len(line) > 0 {
			if id, v, ok := parseSpillLine(line); ok {
				c.ids, c.values = append(c.ids, id), append(c.values, v)
			} else {
				c.bad++
			}
		}
		if errors.Is(err, io.EOF) {
			c.eof = true
			break
		}
		if err != nil {
			return spillChunk{}, fmt.Errorf("audit spill: %w", err)
		}
	}
	if !c.eof { // a file that ends right after the chunk ends here
		if _, err := br.Peek(1); errors.Is(err, io.EOF) {
			c.eof = true
		}
	}
	return c, nil
}

// done records that chunk c of the oldest pending file is in Redis: the
// file is removed once it is all replayed.
func (s *spill) done(c spillChunk) error {
	if !c.eof {
		s.off = c.next
		return nil
	}
	if len(s.pending) == 0 {
		return nil
	}
	name := s.pending[0]
	s.pending, s.off = s.pending[1:], 0
	s.size -= c.next
	if s.size < 0 || s.empty() {
		s.size = 0
	}
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("audit spill: %w", err)
	}
	return nil
}

// setAside renames the oldest pending file so that it is not replayed
// again (it cannot be read), and goes on with the next.
func (s *spill) setAside() {
	if len(s.pending) == 0 {
		return
	}
	name := s.pending[0]
	s.pending, s.off = s.pending[1:], 0
	if fi, err := os.Stat(name); err == nil {
		s.size = max(0, s.size-fi.Size())
	}
	_ = os.Rename(name, name+".unreadable")
}

// close seals the current file and unlocks the directory; the files stay
// for the next process.
func (s *spill) close() error {
	err := s.seal()
	if s.lock != nil {
		err = errors.Join(err, s.lock.Close()) // closing it releases the lock
		s.lock = nil
	}
	return err
}

// appendSpillLine appends the spill line of a record whose JSON is v.
func appendSpillLine(b []byte, id string, v []byte) []byte {
	b = append(b, id...)
	b = append(b, ' ')
	b = append(b, v...)
	return append(b, '\n')
}

// parseSpillLine splits a spill line into its decision id and the record's
// JSON; ok is false for anything else (a torn or damaged line).
func parseSpillLine(line []byte) (id, v []byte, ok bool) {
	line, nl := bytes.CutSuffix(line, []byte{'\n'})
	if !nl {
		return nil, nil, false
	}
	id, v, found := bytes.Cut(line, []byte{' '})
	if !found || !service.ValidDecisionID(string(id)) || !json.Valid(v) || len(v) == 0 || v[0] != '{' {
		return nil, nil, false
	}
	var head struct {
		DecisionID string `json:"decision_id"`
	}
	if json.Unmarshal(v, &head) != nil || head.DecisionID != string(id) {
		return nil, nil, false
	}
	return id, v, true
}
