package features

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// ErrNotLinked is returned for a WeCom contact that is linked to no
// customer.
var ErrNotLinked = errors.New("contact not linked to a customer")

// ContactLink ties a WeCom external contact to the bank's customer: the
// external_userid the WeCom JS-SDK gives a sidebar page
// (getCurExternalContact) is not the bank's customer id; the bank makes the
// link when the customer adds the agent, and hands it to nbp.
type ContactLink struct {
	ExternalUserID string
	CustomerID     string
}

// LinkContacts stores the links in one pipelined round trip, each
// replacing the contact's earlier link. Both ids must be well formed
// (ValidID). Writing a link twice changes nothing, so a failed call can be
// retried whole; the error wraps ErrUnavailable when Redis could not
// answer.
func (s *Store) LinkContacts(ctx context.Context, links []ContactLink) error {
	pipe := s.rdb.Pipeline()
	for i, l := range links {
		if !ValidID(l.ExternalUserID) || !ValidID(l.CustomerID) {
			return fmt.Errorf("link contacts: malformed id at %d", i)
		}
		pipe.Set(ctx, s.keys.WecomContact(l.ExternalUserID), l.CustomerID, 0)
	}
	if len(links) == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("link contacts: %w: %w", ErrUnavailable, err)
	}
	return nil
}

// LinkedCustomer returns the customer a WeCom contact is linked to:
// ErrNotLinked when there is none, an error wrapping ErrUnavailable when
// Redis could not answer.
func (s *Store) LinkedCustomer(ctx context.Context, externalUserID string) (string, error) {
	if !ValidID(externalUserID) {
		return "", ErrNotLinked
	}
	id, err := s.rdb.Get(ctx, s.keys.WecomContact(externalUserID)).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return "", ErrNotLinked
	case err != nil:
		return "", fmt.Errorf("linked customer: %w: %w", ErrUnavailable, err)
	}
	return id, nil
}
