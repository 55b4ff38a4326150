package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	nbp := filepath.Join(dir, "nbp")
	lib := filepath.Join(dir, "libonnxruntime.so.1")
	for _, f := range []string{nbp, lib} {
		if err := os.WriteFile(f, nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	self := filepath.Join(dir, "nbp-load")

	t.Run("defaults", func(t *testing.T) {
		c, err := parseConfig(nil, env(map[string]string{"ONNXRUNTIME_LIB": lib}), self)
		if err != nil {
			t.Fatal(err)
		}
		if c.nbpBin != nbp || c.ortLib != lib || c.duration != 10*time.Second || c.warmup != 2*time.Second ||
			c.concurrency != 32 || c.rate != 5000 || c.pool != 500 || c.n != 10000 || c.redisAddr != "" {
			t.Errorf("defaults: %+v", c)
		}
	})
	t.Run("REDIS_ADDR and a small rate", func(t *testing.T) {
		c, err := parseConfig([]string{"-rate", "100"}, env(map[string]string{"ONNXRUNTIME_LIB": lib, "REDIS_ADDR": "10.0.0.1:6379"}), self)
		if err != nil {
			t.Fatal(err)
		}
		if c.redisAddr != "10.0.0.1:6379" || c.pool != 64 {
			t.Errorf("redis %q pool %d, want 10.0.0.1:6379 and 64", c.redisAddr, c.pool)
		}
	})
	t.Run("every problem at once", func(t *testing.T) {
		_, err := parseConfig([]string{"-duration", "0s", "-concurrency", "0", "-rate", "-1", "-n", "0", "-nbp", filepath.Join(dir, "missing"), "extra"},
			env(map[string]string{"ONNXRUNTIME_LIB": lib}), self)
		if err == nil {
			t.Fatal("no error")
		}
		for _, want := range []string{"-duration", "-concurrency", "-rate", "-n ", "-nbp", "unexpected arguments"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %s", err, want)
			}
		}
	})
	t.Run("serve-baseline needs only redis", func(t *testing.T) {
		c, err := parseConfig([]string{"-serve-baseline", "-redis", "127.0.0.1:1", "-prefix", "x:"}, env(nil), "")
		if err != nil || c.prefix != "x:" || c.addr != "127.0.0.1:0" {
			t.Errorf("got %+v, %v", c, err)
		}
		if _, err := parseConfig([]string{"-serve-baseline"}, env(nil), ""); err == nil {
			t.Error("-serve-baseline without -redis: no error")
		}
	})
}
