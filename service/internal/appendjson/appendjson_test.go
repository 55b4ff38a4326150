package appendjson_test

import (
	"encoding/json"
	"testing"

	"github.com/directops/nbp/service/internal/appendjson"
)

func FuzzString(f *testing.F) {
	for _, s := range []string{"", "王女士", "a\"b\\c", "\x00\x1f<>&", "\xff", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendjson.String(nil, s); string(got) != string(want) {
			t.Fatalf("%q: got %s, want %s", s, got, want)
		}
	})
}
