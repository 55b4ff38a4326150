package model

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Live scores with the model version in force and swaps it for another
// without a pause: a call holds the version it started with until its
// Release, and a version swapped out is closed once its last call ends.
type Live struct {
	cur atomic.Pointer[holder]
}

type holder struct {
	m       *ONNX
	refs    atomic.Int64
	retired atomic.Bool
	once    sync.Once
}

// NewLive serves m.
func NewLive(m *ONNX) *Live {
	l := &Live{}
	l.cur.Store(&holder{m: m})
	return l
}

func (l *Live) acquire() *holder {
	for {
		h := l.cur.Load()
		h.refs.Add(1)
		if l.cur.Load() == h {
			return h
		}
		h.release() // swapped meanwhile: take the new one
	}
}

func (h *holder) release() {
	if h.refs.Add(-1) == 0 && h.retired.Load() {
		h.close()
	}
}

func (h *holder) close() { h.once.Do(func() { go h.m.Close() }) }

// Score scores with the version in force (see ONNX.Score).
func (l *Live) Score(ctx context.Context, x []float32, n int, out []float32) (Scored, error) {
	h := l.acquire()
	sc, err := h.m.Score(ctx, x, n, out)
	if err != nil {
		h.release()
		return sc, err
	}
	rel := sc.Release
	sc.Release = func() {
		if rel != nil {
			rel()
		}
		h.release()
	}
	return sc, nil
}

// StopsOnCancel is true: every version is an ONNX scorer.
func (l *Live) StopsOnCancel() bool { return true }

// Info returns the version in force's info.
func (l *Live) Info() ModelInfo { return l.cur.Load().m.Info() }

// Version returns the version in force.
func (l *Live) Version() string { return l.cur.Load().m.Version() }

// Swap puts m in force; the version it replaces is closed once the calls
// under way end.
func (l *Live) Swap(m *ONNX) {
	old := l.cur.Swap(&holder{m: m})
	old.retire()
}

func (h *holder) retire() {
	h.retired.Store(true)
	if h.refs.Load() == 0 {
		h.close()
	}
}

// Close closes the version in force; Live must not be used after.
func (l *Live) Close() { l.cur.Load().m.Close() }

// PointerFile names, in a model directory, the version in force.
const PointerFile = "CURRENT"

// Dir is a model directory: one folder per version (its manifest, files
// and card), and PointerFile holding the name of the version in force.
type Dir string

// IsDir reports whether path is a model directory: it holds a pointer.
func IsDir(path string) bool {
	st, err := os.Stat(filepath.Join(path, PointerFile))
	return err == nil && st.Mode().IsRegular()
}

// Current reads the pointer.
func (d Dir) Current() (string, error) {
	b, err := os.ReadFile(filepath.Join(string(d), PointerFile))
	if err != nil {
		return "", fmt.Errorf("model pointer: %w", err)
	}
	return ParsePointer(b)
}

// ParsePointer reads a pointer file's content: one version name.
func ParsePointer(b []byte) (string, error) {
	v := strings.TrimSpace(string(b))
	if !ValidVersion(v) {
		return "", fmt.Errorf("%w: model pointer %q does not name a version", ErrMismatch, v)
	}
	return v, nil
}

// Path returns a version's folder.
func (d Dir) Path(version string) string { return filepath.Join(string(d), version) }

// SetCurrent points to version: the pointer is replaced whole (written
// aside, then renamed), so that a reader never sees half of it.
func (d Dir) SetCurrent(version string) error {
	if !ValidVersion(version) {
		return fmt.Errorf("%w: %q is not a version name", ErrMismatch, version)
	}
	tmp, err := os.CreateTemp(string(d), ".pointer-*")
	if err != nil {
		return fmt.Errorf("model pointer: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(version + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("model pointer: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("model pointer: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("model pointer: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(string(d), PointerFile)); err != nil {
		return fmt.Errorf("model pointer: %w", err)
	}
	return nil
}

// Versions lists the version folders, by name.
func (d Dir) Versions() ([]string, error) {
	ents, err := os.ReadDir(string(d))
	if err != nil {
		return nil, fmt.Errorf("model directory: %w", err)
	}
	var vs []string
	for _, e := range ents {
		if e.IsDir() && ValidVersion(e.Name()) {
			vs = append(vs, e.Name())
		}
	}
	slices.Sort(vs)
	return vs, nil
}

// Registry keeps a Live scorer on the version a model directory's pointer
// names: a version is opened and validated off the request path, and takes
// traffic only when it passes; otherwise the one in force stays.
type Registry struct {
	dir  Dir
	open func(path string) (*ONNX, error)
	live *Live
	log  *slog.Logger
	// OnLoad, when set, is told of every attempt on a version the
	// directory holds: the version, and nil or why it was refused.
	OnLoad func(version string, err error)
	mu     sync.Mutex // one load at a time
}

// OpenRegistry opens the version the pointer names with open (which
// validates it); the registry serves it until told otherwise.
func OpenRegistry(dir Dir, open func(path string) (*ONNX, error), log *slog.Logger) (*Registry, error) {
	v, err := dir.Current()
	if err != nil {
		return nil, err
	}
	m, err := open(dir.Path(v))
	if err != nil {
		return nil, err
	}
	if m.Version() != v {
		m.Close()
		return nil, fmt.Errorf("%w: folder %s holds version %q", ErrMismatch, v, m.Version())
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{dir: dir, open: open, live: NewLive(m), log: log}, nil
}

// Live returns the scorer that follows the registry.
func (r *Registry) Live() *Live { return r.live }

// Dir returns the model directory.
func (r *Registry) Dir() Dir { return r.dir }

// Versions lists the directory's versions.
func (r *Registry) Versions() ([]string, error) { return r.dir.Versions() }

// InForce returns the version serving.
func (r *Registry) InForce() string { return r.live.Version() }

// ErrUnknownVersion is wrapped when no folder holds a version.
var ErrUnknownVersion = errors.New("no such model version")

// Load puts a version in force, unless it is already: it is opened and
// validated first, and a version that fails stays out, with the one in
// force serving on. The pointer is not touched (see Use).
func (r *Registry) Load(version string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.loadLocked(version)
}

func (r *Registry) loadLocked(version string) error {
	if version == r.live.Version() {
		return nil
	}
	err := r.load(version)
	if r.OnLoad != nil && !errors.Is(err, ErrUnknownVersion) {
		r.OnLoad(version, err)
	}
	if err != nil {
		r.log.Error("model version refused; the one in force stays", slog.String("version", version),
			slog.String("in_force", r.live.Version()), slog.String("error", err.Error()))
		return err
	}
	r.log.Info("model version in force", slog.String("version", version))
	return nil
}

func (r *Registry) load(version string) error {
	if !ValidVersion(version) {
		return fmt.Errorf("%w: %q is not a version name", ErrUnknownVersion, version)
	}
	path := r.dir.Path(version)
	if st, err := os.Stat(path); err != nil || !st.IsDir() {
		return fmt.Errorf("%w: %s", ErrUnknownVersion, version)
	}
	m, err := r.open(path)
	if err != nil {
		return err
	}
	if m.Version() != version {
		m.Close()
		return fmt.Errorf("%w: folder %s holds version %q", ErrMismatch, version, m.Version())
	}
	r.live.Swap(m)
	return nil
}

// Use puts a version in force and points the directory to it, so that a
// restart serves it too: promotion and rollback are this one step. Both
// happen under the registry's lock, so that a pointer read before the step
// cannot be followed after it (see Reload).
func (r *Registry) Use(version string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.loadLocked(version); err != nil {
		return err
	}
	return r.dir.SetCurrent(version)
}

// Serves says whether a pointer's content names the version in force.
func (r *Registry) Serves(pointer []byte) bool {
	v, err := ParsePointer(pointer)
	return err == nil && v == r.InForce()
}

// Reload follows the pointer file's content (see service.WatchPointer).
// A content the pointer no longer holds is stale (a Use moved it since it
// was read) and is ignored: the watcher reads the new content next.
func (r *Registry) Reload(pointer []byte) error {
	v, err := ParsePointer(pointer)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur, err := r.dir.Current(); err == nil && cur != v {
		return nil
	}
	return r.loadLocked(v)
}
