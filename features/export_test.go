package features

// CountedKey exposes the key of an event's counted mark.
func (s *Store) CountedKey(stats, customerID, eventID string) string {
	return s.countedKey(stats, customerID, eventID)
}
