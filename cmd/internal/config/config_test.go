package config_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/directops/nbp/cmd/internal/config"
	"github.com/directops/nbp/features"
)

type nested struct {
	Key       config.Secret
	Retention time.Duration
}

type settings struct {
	Addr        string
	Redis       config.Redis
	Audit       nested
	ORTLib      string
	MaxInFlight int
	hidden      string
}

// TestLogValueMasksSecretsByType: a configuration logged whole shows every
// exported setting by its snake_case name and never a secret, however
// deep, with no list of secrets to keep up to date.
func TestLogValueMasksSecretsByType(t *testing.T) {
	s := settings{Addr: ":8080", ORTLib: "/x.so", MaxInFlight: 3, hidden: "not logged",
		Redis: config.Redis{Addrs: []string{"a:1"}, Password: "hunter2", Prefix: "nbp:", Timeouts: features.DefaultTimeouts()},
		Audit: nested{Key: "topsecret", Retention: time.Hour}}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", slog.Any("config", config.LogValue(s)))
	line := buf.String()
	for _, secret := range []string{"hunter2", "topsecret", "not logged"} {
		if strings.Contains(line, secret) {
			t.Errorf("the log line shows %q: %s", secret, line)
		}
	}
	var got struct{ Config map[string]any }
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"addr": ":8080", "ort_lib": "/x.so", "max_in_flight": 3.0,
		"redis": map[string]any{"addrs": []any{"a:1"}, "password": "***", "prefix": "nbp:",
			"timeouts": map[string]any{"dial": "200ms", "read": "100ms", "write": "100ms", "pool": "50ms"}},
		"audit": map[string]any{"key": "***", "retention": "1h0m0s"},
	}
	if diff := cmp.Diff(want, got.Config); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		if got := fmt.Sprintf(f, s); strings.Contains(got, "hunter2") || strings.Contains(got, "topsecret") {
			t.Errorf("%s shows a secret: %s", f, got)
		}
	}
	if config.Secret("").String() != "" || config.Secret("x").String() != "***" {
		t.Error("an unset secret shows empty, a set one as ***")
	}
}

func TestEnvKeepsEveryProblem(t *testing.T) {
	env := config.NewEnv(func(k string) string {
		return map[string]string{"A": "5s", "B": "soon", "C": "7", "D": "many", "E": "1"}[k]
	})
	if env.Duration("A", 0) != 5*time.Second || env.Duration("B", time.Second) != time.Second ||
		env.Int("C", 0) != 7 || env.Int("D", 2) != 2 || !env.On("E") || env.On("F") || env.String("F", "def") != "def" {
		t.Error("values or defaults wrong")
	}
	if errs := env.Errs(); len(errs) != 2 || !strings.Contains(errs[0].Error(), "B") || !strings.Contains(errs[1].Error(), "D") {
		t.Errorf("errors %v, want B's and D's", errs)
	}
	if got := config.List(" a:1, ,b:2 "); !cmp.Equal(got, []string{"a:1", "b:2"}) {
		t.Errorf("List = %q", got)
	}
}
