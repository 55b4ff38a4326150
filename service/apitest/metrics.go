package apitest

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// LintMetrics checks a /metrics scrape with `promtool check metrics` when
// promtool is installed, and writes it to the file the environment
// variable env names, when set (make test lints those files too, so CI
// checks them even where a test run alone would skip promtool).
func LintMetrics(t testing.TB, scrape, env string) {
	t.Helper()
	if out := os.Getenv(env); out != "" {
		if err := os.WriteFile(out, []byte(scrape), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed: the scrape was not linted")
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(scrape)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out.String())
	}
}
