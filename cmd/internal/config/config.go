// Package config holds what the binaries' configurations share: reading
// the environment with every problem kept, a Secret that never shows in a
// log, per-concern settings (the Redis connection, the model) that
// register their own flags, and one way to log a whole configuration.
package config

import (
	"encoding"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Secret is a setting that must never be logged: it shows as "***" (or
// "" when unset) wherever it is printed or logged.
type Secret string

// String masks the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "***"
}

// LogValue masks the secret in a log line.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Format masks the secret for every fmt verb, %#v included. (fmt prints a
// struct's unexported fields without their methods: keep secrets in
// exported fields.)
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// MarshalText masks the secret in JSON and text encodings.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the secret itself, for the one place that uses it.
func (s Secret) Reveal() string { return string(s) }

// Env reads settings from the environment with defaults, keeping every
// value it could not parse.
type Env struct {
	get  func(string) string
	errs []error
}

// NewEnv reads getenv.
func NewEnv(getenv func(string) string) *Env { return &Env{get: getenv} }

// Get returns the variable's value, "" when unset.
func (e *Env) Get(key string) string { return e.get(key) }

// String returns the variable, or def when unset.
func (e *Env) String(key, def string) string {
	if v := e.get(key); v != "" {
		return v
	}
	return def
}

// Duration returns the variable as a duration, or def when unset.
func (e *Env) Duration(key string, def time.Duration) time.Duration {
	v := e.get(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: %w", key, err))
		return def
	}
	return d
}

// Int returns the variable as an integer, or def when unset.
func (e *Env) Int(key string, def int) int {
	v := e.get(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: %w", key, err))
		return def
	}
	return n
}

// Float returns the variable as a number, or def when unset.
func (e *Env) Float(key string, def float64) float64 {
	v := e.get(key)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: %w", key, err))
		return def
	}
	return f
}

// On reports whether the variable is "1".
func (e *Env) On(key string) bool { return e.get(key) == "1" }

// Errs returns the values that could not be parsed.
func (e *Env) Errs() []error { return e.errs }

// List splits a comma-separated list, dropping blanks.
func List(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// LogValue describes a configuration struct for a log line: every
// exported field, by its snake_case name, nested structs as groups. A
// field's type decides how it shows, so secrets (Secret) are masked
// without a list of them to keep.
func LogValue(v any) slog.Value {
	return structValue(reflect.ValueOf(v))
}

func structValue(rv reflect.Value) slog.Value {
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return slog.AnyValue(nil)
		}
		rv = rv.Elem()
	}
	var attrs []slog.Attr
	rt := rv.Type()
	for i := range rt.NumField() {
		f := rt.Field(i)
		if !f.IsExported() {
			continue
		}
		attrs = append(attrs, slog.Attr{Key: snake(f.Name), Value: fieldValue(rv.Field(i))})
	}
	return slog.GroupValue(attrs...)
}

func fieldValue(fv reflect.Value) slog.Value {
	switch x := fv.Interface().(type) {
	case slog.LogValuer:
		return x.LogValue()
	case time.Duration:
		return slog.StringValue(x.String())
	case fmt.Stringer:
		return slog.StringValue(x.String())
	case encoding.TextMarshaler:
		b, _ := x.MarshalText()
		return slog.StringValue(string(b))
	}
	if fv.Kind() == reflect.Struct {
		return structValue(fv)
	}
	return slog.AnyValue(fv.Interface())
}

// snake turns a Go field name into snake_case: RequestTimeout ->
// request_timeout, ORTLib -> ort_lib.
func snake(s string) string {
	rs := []rune(s)
	var b strings.Builder
	for i, r := range rs {
		if unicode.IsUpper(r) {
			prevLower := i > 0 && !unicode.IsUpper(rs[i-1])
			nextLower := i > 0 && i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if i > 0 && (prevLower || nextLower) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
