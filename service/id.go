package service

import (
	"crypto/rand"
	"encoding/binary"
	"strings"
	"time"
)

// crockford is Crockford's base32 alphabet: no I, L, O or U.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewDecisionID returns a 26-character, time-ordered, random decision id
// for a decision made at the given time: 48 bits of Unix milliseconds then
// 80 random bits, in Crockford base32.
func NewDecisionID(at time.Time) string {
	var b [16]byte
	ms := uint64(at.UnixMilli())
	binary.BigEndian.PutUint16(b[0:], uint16(ms>>32))
	binary.BigEndian.PutUint32(b[2:], uint32(ms))
	_, _ = rand.Read(b[6:])
	return encodeID(b)
}

func encodeID(b [16]byte) string {
	hi := binary.BigEndian.Uint64(b[0:8])
	lo := binary.BigEndian.Uint64(b[8:16])
	var out [26]byte
	// 128 bits as 26 five-bit groups, the first holding the top 3 bits.
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// ValidDecisionID reports whether s has the form of a decision id.
func ValidDecisionID(s string) bool {
	if len(s) != 26 || s[0] > '7' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' && c != 'I' && c != 'L' && c != 'O' && c != 'U') {
			return false
		}
	}
	return true
}

// DecisionTime returns the time a decision id carries (to the millisecond):
// when the decision was made.
func DecisionTime(id string) time.Time {
	return time.UnixMilli(decisionMillis(id))
}

// decisionMillis reads the Unix milliseconds at the head of a decision id.
func decisionMillis(id string) int64 {
	var ms int64
	for i := 0; i < 10 && i < len(id); i++ {
		ms = ms<<5 | int64(strings.IndexByte(crockford, id[i])&31)
	}
	return ms // the first character holds 3 bits, the next nine 45: the 48-bit time
}
