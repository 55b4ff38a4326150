package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/directops/nbp/features"
	"github.com/directops/nbp/service/api"
)

// session is a page's login, kept in Redis under the hash of its token for
// its lifetime: a token read from Redis logs nobody in, and every replica of
// nbp sees the same sessions.
type session struct {
	Role    api.Role  `json:"role"`
	UserID  string    `json:"user_id"`
	Team    string    `json:"team,omitempty"`
	CSRF    string    `json:"csrf"`
	Expires time.Time `json:"expires"`
}

// errNoSession is a token that names no live session.
var errNoSession = errors.New("no such session")

type sessions struct {
	rdb  redis.UniversalClient
	keys features.Keys
}

// newToken returns 32 random bytes, URL-safe base64.
func newToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *sessions) key(token string) string {
	sum := sha256.Sum256([]byte(token))
	return s.keys.Session(hex.EncodeToString(sum[:]))
}

// create starts a session and returns its token.
func (s *sessions) create(ctx context.Context, ss session) (string, error) {
	ttl := time.Until(ss.Expires)
	if ttl <= 0 {
		return "", fmt.Errorf("session: already expired")
	}
	b, err := json.Marshal(ss)
	if err != nil {
		return "", err
	}
	token := newToken()
	if err := s.rdb.Set(ctx, s.key(token), b, ttl).Err(); err != nil {
		return "", fmt.Errorf("session: %w", err)
	}
	return token, nil
}

// get returns a live session, errNoSession when the token names none (or
// one past its time, whatever Redis still holds).
func (s *sessions) get(ctx context.Context, token string, now time.Time) (session, error) {
	var ss session
	b, err := s.rdb.Get(ctx, s.key(token)).Bytes()
	if errors.Is(err, redis.Nil) {
		return ss, errNoSession
	}
	if err != nil {
		return ss, fmt.Errorf("session: %w", err)
	}
	if err := json.Unmarshal(b, &ss); err != nil || !now.Before(ss.Expires) {
		return session{}, errNoSession
	}
	return ss, nil
}

// end deletes a session.
func (s *sessions) end(ctx context.Context, token string) error {
	return s.rdb.Del(ctx, s.key(token)).Err()
}
