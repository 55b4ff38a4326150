package features

// FailAfter returns o set to make RecordEvents fail right after the given
// step (1: contact state, 2: statistics and stream, 3: confirmation), as if
// Redis had gone away then.
func FailAfter(o EventOptions, step int) EventOptions {
	o.failAfter = step
	return o
}

// CountedKey exposes the key of an event's counted mark.
func (s *Store) CountedKey(stats, customerID, eventID string) string {
	return s.countedKey(stats, customerID, eventID)
}
