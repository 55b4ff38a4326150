package api

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/directops/nbp/catalog"
)

// Endpoints a client may be allowed.
const (
	EndpointRecommend = "recommend" // GET /v1/customers/{id}/recommendations
	EndpointEvents    = "events"    // POST /v1/events
	EndpointStats     = "stats"     // GET /v1/stats
	EndpointDecisions = "decisions" // GET /v1/decisions/{id}
	EndpointContacts  = "contacts"  // GET /v1/contacts/{external_userid}
	EndpointLinks     = "links"     // PUT /v1/contacts
	EndpointProfile   = "profile"   // GET /v1/customers/{id}/profile
	EndpointOverview  = "overview"  // GET /v1/overview
	EndpointCatalog   = "catalog"   // GET /v1/catalog
	EndpointModels    = "models"    // GET and PUT /v1/admin/model
	// EndpointSignatures is the pages' own (GET /v1/wecom/signatures): a
	// role's, never an API client's.
	EndpointSignatures = "signatures"
)

// clientEndpoints are the endpoints a clients file may grant.
var clientEndpoints = []string{EndpointRecommend, EndpointEvents, EndpointStats, EndpointDecisions,
	EndpointContacts, EndpointLinks, EndpointProfile, EndpointOverview, EndpointCatalog, EndpointModels}

// Error codes of access control.
const (
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeRateLimited  = "rate_limited"
)

// Clients are the API's callers: each with its keys (stored as SHA-256
// hashes, never in clear), the endpoints and channels it may use, and its
// rate limit. A client may have several keys, so that a key can be rotated
// without a gap: add the new one, move the caller, remove the old one.
type Clients struct {
	clients []*client
}

type client struct {
	name      string
	hashes    [][]byte
	endpoints map[string]bool
	channels  [catalog.NumChannels]bool
	limiter   *bucket
}

type fileClients struct {
	Clients []struct {
		Name          string   `json:"name"`
		KeySHA256     []string `json:"key_sha256"`
		Endpoints     []string `json:"endpoints"`
		Channels      []string `json:"channels"`
		RatePerSecond float64  `json:"rate_per_second"`
		Burst         float64  `json:"burst"`
	} `json:"clients"`
}

// ParseClients reads the clients file:
//
//	{"clients": [{"name": "app", "key_sha256": ["<hex>"], "endpoints": ["recommend", "events"],
//	              "channels": ["app_feed"], "rate_per_second": 5000, "burst": 10000}]}
//
// Every problem is reported at once.
func ParseClients(b []byte) (*Clients, error) {
	var f fileClients
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&f); err != nil {
		return nil, fmt.Errorf("clients: %w", err)
	}
	var probs []string
	cs := &Clients{}
	seen := map[string]bool{}
	for i, fc := range f.Clients {
		where := fmt.Sprintf("clients[%d] (%s)", i, fc.Name)
		if fc.Name == "" || seen[fc.Name] {
			probs = append(probs, where+": a unique name is required")
		}
		seen[fc.Name] = true
		c := &client{name: fc.Name, endpoints: map[string]bool{}}
		if len(fc.KeySHA256) == 0 {
			probs = append(probs, where+": key_sha256 must list at least one key hash")
		}
		for _, h := range fc.KeySHA256 {
			raw, err := hex.DecodeString(h)
			if err != nil || len(raw) != sha256.Size {
				probs = append(probs, where+": key_sha256 entries are 64 hex characters (SHA-256 of the key)")
				continue
			}
			c.hashes = append(c.hashes, raw)
		}
		for _, e := range fc.Endpoints {
			if !slices.Contains(clientEndpoints, e) {
				probs = append(probs, fmt.Sprintf("%s: unknown endpoint %q", where, e))
				continue
			}
			c.endpoints[e] = true
		}
		for _, name := range fc.Channels {
			ch, err := catalog.ParseChannel(name)
			if err != nil {
				probs = append(probs, fmt.Sprintf("%s: %v", where, err))
				continue
			}
			c.channels[ch] = true
		}
		if fc.RatePerSecond < 0 || fc.Burst < 0 {
			probs = append(probs, where+": rate_per_second and burst must not be negative")
		}
		if fc.RatePerSecond > 0 {
			burst := fc.Burst
			if burst == 0 {
				burst = math.Max(1, fc.RatePerSecond)
			}
			c.limiter = newBucket(fc.RatePerSecond, burst)
		}
		cs.clients = append(cs.clients, c)
	}
	if len(probs) > 0 {
		return nil, fmt.Errorf("clients: %s", strings.Join(probs, "; "))
	}
	return cs, nil
}

// find returns the client holding the key. Every stored hash is compared,
// in constant time, whatever matches: the time taken says nothing of which
// key was close.
func (cs *Clients) find(key string) *client {
	sum := sha256.Sum256([]byte(key))
	var found *client
	for _, c := range cs.clients {
		for _, h := range c.hashes {
			if subtle.ConstantTimeCompare(sum[:], h) == 1 && found == nil {
				found = c
			}
		}
	}
	return found
}

// presentedKey reads the key from "Authorization: Bearer <key>" or
// "X-API-Key: <key>". It is never logged.
func presentedKey(c *fiber.Ctx) string {
	if k := c.Get("X-API-Key"); k != "" {
		return k
	}
	if k, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer "); ok {
		return strings.TrimSpace(k)
	}
	return ""
}

const (
	clientLocal    = "nbp.client"
	principalLocal = "nbp.principal"
)

// Role is what the person behind a page's session may do.
type Role string

// The roles of the pages' users.
const (
	// RoleAgent is a WeCom agent (客户经理) in the chat sidebar: the
	// recommendations, profiles and contacts of the wecom_agent channel,
	// and outcome events posted as themselves.
	RoleAgent Role = "agent"
	// RoleManager is the direct-operations team at the dashboard: the
	// statistics and the overview.
	RoleManager Role = "manager"
)

// roleEndpoints is what each role may call. Neither may link contacts,
// read decision records, or call an endpoint not listed here.
var roleEndpoints = map[Role][]string{
	RoleAgent:   {EndpointRecommend, EndpointEvents, EndpointContacts, EndpointProfile, EndpointCatalog, EndpointSignatures},
	RoleManager: {EndpointStats, EndpointOverview, EndpointCatalog},
}

// RoleAllows reports whether a role may call an endpoint.
func RoleAllows(r Role, endpoint string) bool { return slices.Contains(roleEndpoints[r], endpoint) }

// Principal is the person behind a page's session: a WeCom userid (an
// employee id, not customer data), their role and team.
type Principal struct {
	Role   Role
	UserID string
	Team   string
}

// Sessions authenticates the requests of the pages, which carry a session
// cookie and never an API key (web.Pages is one).
type Sessions interface {
	// Authenticate returns the principal of the request's session; ok is
	// false when the request carries no session cookie. A bad or expired
	// session, or a state-changing request that fails the CSRF check, is
	// an error (see Error).
	Authenticate(c *fiber.Ctx) (p Principal, ok bool, err error)
}

// principal returns the request's session principal, nil when it came
// with an API key or with access control off.
func principal(c *fiber.Ctx) *Principal {
	p, _ := c.Locals(principalLocal).(*Principal)
	return p
}

// authorize admits a request to an endpoint: 401 without a valid key or
// session, 403 for an endpoint the client or role may not use, 429 past
// its rate. A request with a session cookie is judged by its session
// alone. With no clients configured, requests without a session are let
// in.
func (s *Server) authorize(endpoint string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if s.pages != nil {
			p, ok, err := s.pages.Authenticate(c)
			if err != nil {
				return err
			}
			if ok {
				if !RoleAllows(p.Role, endpoint) {
					return &apiError{status: fiber.StatusForbidden, code: CodeForbidden, message: "your role may not use this endpoint"}
				}
				c.Locals(principalLocal, &p)
				return c.Next()
			}
		}
		cs := s.clients.Load()
		if cs == nil {
			return c.Next()
		}
		cl := cs.find(presentedKey(c))
		if cl == nil {
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="nbp"`)
			return &apiError{status: fiber.StatusUnauthorized, code: CodeUnauthorized, message: "a valid API key is required (Authorization: Bearer <key>)"}
		}
		if !cl.endpoints[endpoint] {
			return &apiError{status: fiber.StatusForbidden, code: CodeForbidden, message: "this client may not use this endpoint"}
		}
		if cl.limiter != nil {
			if wait, ok := cl.limiter.take(time.Now()); !ok {
				c.Set(fiber.HeaderRetryAfter, fmt.Sprint(int(math.Ceil(wait.Seconds()))))
				return &apiError{status: fiber.StatusTooManyRequests, code: CodeRateLimited, message: "rate limit exceeded; retry later"}
			}
		}
		c.Locals(clientLocal, cl)
		return c.Next()
	}
}

// allowsChannel reports whether the request's client may ask for the
// channel (always, with access control off). A session's principal may ask
// for the wecom_agent channel only.
func allowsChannel(c *fiber.Ctx, ch catalog.Channel) bool {
	if p := principal(c); p != nil {
		return ch == catalog.WecomAgent
	}
	cl, ok := c.Locals(clientLocal).(*client)
	return !ok || cl.channels[ch]
}

// SetClients puts a clients file in force (nil: access control off). Keys
// are rotated this way, without a restart.
func (s *Server) SetClients(cs *Clients) { s.clients.Store(cs) }

// bucket is a token bucket: rate tokens a second, at most burst.
type bucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate, burst float64) *bucket {
	return &bucket{rate: rate, burst: burst, tokens: burst}
}

// take takes a token, or says how long until one is due.
func (b *bucket) take(now time.Time) (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() {
		b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return time.Duration((1 - b.tokens) / b.rate * float64(time.Second)), false
}
