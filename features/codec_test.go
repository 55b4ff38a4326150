package features_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/featurestest"
)

func TestRecordRoundTrip(t *testing.T) {
	withNaNPayload := sampleVector()
	withNaNPayload.Values[features.AUM] = math.Float32frombits(0x7fc00123)
	withNaNPayload.Values[features.FundBalance] = math.Float32frombits(0xffc00000)

	msec := sampleVector()
	msec.UpdatedAt = time.Date(2026, 11, 27, 2, 30, 0, 123_456_789, cst)

	longest := sampleVector()
	longest.Salutation = "欧阳娜娜女士" // 6 runes, 18 bytes

	ascii := sampleVector()
	ascii.Salutation = "Ms Li"

	before1970 := sampleVector()
	before1970.UpdatedAt = time.Date(1969, 12, 31, 23, 59, 59, 999_000_000, time.UTC)

	tests := []struct {
		name string
		v    features.Vector
		// want is the decoded vector when it differs from v.
		want *features.Vector
	}{
		{name: "sample", v: sampleVector()},
		{name: "all missing", v: features.Missing()},
		{name: "zero vector", v: features.Vector{}},
		{name: "NaN payloads", v: withNaNPayload},
		{name: "longest salutation", v: longest},
		{name: "ascii salutation", v: ascii},
		{name: "updated at before 1970", v: before1970},
		{name: "updated at to the millisecond", v: msec, want: func() *features.Vector {
			w := msec
			w.UpdatedAt = time.Date(2026, 11, 27, 2, 30, 0, 123_000_000, cst)
			return &w
		}()},
		{name: "salutation too long is dropped", v: func() features.Vector {
			v := sampleVector()
			v.Salutation = "欧阳娜娜娜女士"
			return v
		}(), want: func() *features.Vector {
			v := sampleVector()
			v.Salutation = ""
			return &v
		}()},
		{name: "invalid UTF-8 salutation is dropped", v: func() features.Vector {
			v := sampleVector()
			v.Salutation = "王\xff"
			return v
		}(), want: func() *features.Vector {
			v := sampleVector()
			v.Salutation = ""
			return &v
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.v
			if tc.want != nil {
				want = *tc.want
			}
			prefix := []byte("prefix")
			b := features.AppendRecord(prefix, &tc.v)
			if !bytes.HasPrefix(b, prefix) {
				t.Fatalf("AppendRecord overwrote dst")
			}
			b = b[len(prefix):]
			if len(b) != features.RecordLen(want.Salutation) {
				t.Errorf("record of %d bytes, RecordLen says %d", len(b), features.RecordLen(want.Salutation))
			}
			got := sampleVector() // decoding overwrites every field
			got.Salutation = "stale"
			if err := features.DecodeRecord(b, &got); err != nil {
				t.Fatalf("DecodeRecord: %v", err)
			}
			if diff := cmp.Diff(want, got, featurestest.ValueBits); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRecordLayout(t *testing.T) {
	v := sampleVector()
	b := features.AppendRecord(nil, &v)
	if b[0] != 1 {
		t.Errorf("format byte %d, want 1", b[0])
	}
	if got := binary.LittleEndian.Uint16(b[1:]); got != features.SchemaVersion {
		t.Errorf("schema version %d, want %d", got, features.SchemaVersion)
	}
	if got := int64(binary.LittleEndian.Uint64(b[3:])); got != v.UpdatedAt.UnixMilli() {
		t.Errorf("updated at %d, want %d", got, v.UpdatedAt.UnixMilli())
	}
	if got := int(b[11]); got != int(features.NumFields) {
		t.Errorf("%d values, want %d", got, features.NumFields)
	}
	age := math.Float32frombits(binary.LittleEndian.Uint32(b[12+4*int(features.Age):]))
	if age != 45 {
		t.Errorf("age %v, want 45", age)
	}
	if sal := string(b[len(b)-len(v.Salutation):]); sal != v.Salutation || int(b[len(b)-len(v.Salutation)-1]) != len(v.Salutation) {
		t.Errorf("salutation %q", sal)
	}
}

func TestDecodeRecordRejects(t *testing.T) {
	v := sampleVector()
	good := features.AppendRecord(nil, &v)
	v.Salutation = ""
	bare := features.AppendRecord(nil, &v) // ends with a zero salutation length
	withSalutation := func(sal string) []byte {
		b := bytes.Clone(bare)
		b[len(b)-1] = byte(len(sal))
		return append(b, sal...)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }

	tests := []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"header only", good[:12]},
		{"format 0", edit(func(b []byte) []byte { b[0] = 0; return b })},
		{"format 2", edit(func(b []byte) []byte { b[0] = 2; return b })},
		{"schema version 0", edit(func(b []byte) []byte { binary.LittleEndian.PutUint16(b[1:], 0); return b })},
		{"schema version 2", edit(func(b []byte) []byte { binary.LittleEndian.PutUint16(b[1:], features.SchemaVersion+1); return b })},
		{"fewer values", edit(func(b []byte) []byte { b[11]--; return b })},
		{"more values", edit(func(b []byte) []byte { b[11]++; return b })},
		{"truncated in the values", good[:40]},
		{"truncated before the salutation length", good[:12+4*int(features.NumFields)]},
		{"truncated in the salutation", good[:len(good)-1]},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"salutation length too long", edit(func(b []byte) []byte { b[len(b)-len("王女士")-1]++; return b })},
		{"salutation length too short", edit(func(b []byte) []byte { b[len(b)-len("王女士")-1]--; return b })},
		{"invalid UTF-8 salutation", withSalutation("王\xff\xfe")},
		{"salutation of 7 runes", withSalutation("欧阳娜娜娜女士")},
		{"salutation of 7 ASCII letters", withSalutation("Mr Wang")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := sampleVector()
			before := got
			err := features.DecodeRecord(tc.b, &got)
			if !errors.Is(err, features.ErrCorrupt) {
				t.Fatalf("DecodeRecord error %v, want ErrCorrupt", err)
			}
			if diff := cmp.Diff(before, got, featurestest.ValueBits); diff != "" {
				t.Errorf("a rejected record changed the vector (-before +after):\n%s", diff)
			}
		})
	}

	// The controls: the same builders make records that decode.
	for _, b := range [][]byte{good, bare, withSalutation("欧阳娜娜女士")} {
		var got features.Vector
		if err := features.DecodeRecord(b, &got); err != nil {
			t.Errorf("control record: %v", err)
		}
	}
}

// FuzzDecodeRecord: decoding never panics, and whatever decodes is encoded
// back to the very same bytes (the record has one encoding).
func FuzzDecodeRecord(f *testing.F) {
	v := sampleVector()
	f.Add(features.AppendRecord(nil, &v))
	m := features.Missing()
	f.Add(features.AppendRecord(nil, &m))
	v.Salutation = "欧阳娜娜女士"
	v.UpdatedAt = time.UnixMilli(math.MinInt64)
	v.Values[features.AUM] = math.Float32frombits(0x7f800001) // a signalling NaN
	f.Add(features.AppendRecord(nil, &v))
	f.Add([]byte{})
	f.Add([]byte{1, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var v features.Vector
		if err := features.DecodeRecord(b, &v); err != nil {
			if !errors.Is(err, features.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if len(b) != features.RecordLen(v.Salutation) {
			t.Fatalf("decoded %d bytes, RecordLen(%q) = %d", len(b), v.Salutation, features.RecordLen(v.Salutation))
		}
		if again := features.AppendRecord(nil, &v); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", again, b)
		}
	})
}
