package service

import (
	"testing"
	"time"
)

func TestDecisionIDCarriesItsTime(t *testing.T) {
	at := time.Date(2031, 6, 15, 4, 0, 0, 123e6, time.UTC)
	before, after := at.UnixMilli(), at.UnixMilli()
	id := NewDecisionID(at)
	if !ValidDecisionID(id) {
		t.Fatalf("%q is not a decision id", id)
	}
	if ms := DecisionTime(id).UnixMilli(); ms < before || ms > after {
		t.Fatalf("%s carries %d, made between %d and %d", id, ms, before, after)
	}
}
