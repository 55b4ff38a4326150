package features

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// ErrCorrupt is returned for a stored value that cannot be decoded: a
// different format or schema version, or a truncated record.
var ErrCorrupt = errors.New("corrupt feature record")

// The stored record, little-endian:
//
//	offset 0   uint8    format (1)
//	offset 1   uint16   schema version
//	offset 3   int64    updated at, Unix milliseconds
//	offset 11  uint8    n, the number of values (NumFields)
//	offset 12  n×float32 values in schema order, NaN when missing
//	then       uint8    salutation length in bytes, then the UTF-8 bytes
const (
	recordFormat = 1
	headerLen    = 12
)

// RecordLen is the encoded length of a vector with the given salutation.
func RecordLen(salutation string) int {
	return headerLen + 4*int(NumFields) + 1 + len(salutation)
}

// AppendRecord appends the encoded vector to dst.
func AppendRecord(dst []byte, v *Vector) []byte {
	sal := v.Salutation
	if len(sal) > 255 || utf8.RuneCountInString(sal) > MaxSalutationRunes || !utf8.ValidString(sal) {
		sal = ""
	}
	dst = append(dst, recordFormat)
	dst = binary.LittleEndian.AppendUint16(dst, SchemaVersion)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(v.UpdatedAt.UnixMilli()))
	dst = append(dst, byte(NumFields))
	for _, x := range v.Values {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(x))
	}
	dst = append(dst, byte(len(sal)))
	return append(dst, sal...)
}

// DecodeRecord decodes a stored record into v. It returns an error wrapping
// ErrCorrupt when the record is not a vector of this schema version.
func DecodeRecord(b []byte, v *Vector) error {
	if len(b) < headerLen {
		return fmt.Errorf("%w: %d bytes", ErrCorrupt, len(b))
	}
	if b[0] != recordFormat {
		return fmt.Errorf("%w: format %d", ErrCorrupt, b[0])
	}
	if ver := binary.LittleEndian.Uint16(b[1:]); ver != SchemaVersion {
		return fmt.Errorf("%w: schema version %d, want %d", ErrCorrupt, ver, SchemaVersion)
	}
	ms := int64(binary.LittleEndian.Uint64(b[3:]))
	if int(b[11]) != int(NumFields) {
		return fmt.Errorf("%w: %d values, want %d", ErrCorrupt, b[11], NumFields)
	}
	end := headerLen + 4*int(NumFields)
	if len(b) < end+1 || len(b) != end+1+int(b[end]) {
		return fmt.Errorf("%w: length %d", ErrCorrupt, len(b))
	}
	sal := b[end+1:]
	if !utf8.Valid(sal) || utf8.RuneCount(sal) > MaxSalutationRunes {
		return fmt.Errorf("%w: bad salutation", ErrCorrupt)
	}
	v.UpdatedAt = time.UnixMilli(ms)
	for i := range v.Values {
		v.Values[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[headerLen+4*i:]))
	}
	v.Salutation = string(sal)
	return nil
}

// Hash identifies a vector without revealing it: the SHA-256 of its
// record, hex, first 128 bits. The same vector always has the same hash.
func Hash(v *Vector) string {
	var buf [256]byte
	sum := sha256.Sum256(AppendRecord(buf[:0], v))
	return hex.EncodeToString(sum[:16])
}
