package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"github.com/directops/nbp/features"
)

// baselineRequestTimeout is the deadline of one baseline request, nbp's
// default request timeout.
const baselineRequestTimeout = 100 * time.Millisecond

// baseline is the floor nbp is measured against: the same route on the
// same fiber, answered with one Redis GET of the customer's feature key
// and a small JSON, and nothing else.
type baseline struct {
	rdb    redis.UniversalClient
	prefix string
}

// baselineResponse is the baseline's answer.
type baselineResponse struct {
	CustomerID string `json:"customer_id"`
	Bytes      int    `json:"bytes"`
}

// handleRecommend reads <prefix>{<id>}:f and says how long it is: 404
// when the key is missing, 503 when Redis fails.
func (b *baseline) handleRecommend(c *fiber.Ctx) error {
	id := c.Params("customer_id") // valid only in this handler: fiber reuses it
	ctx, cancel := context.WithTimeout(c.UserContext(), baselineRequestTimeout)
	defer cancel()
	v, err := b.rdb.Get(ctx, b.prefix+"{"+id+"}:f").Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return c.Status(fiber.StatusNotFound).JSON(fiber.Map{"error": "unknown customer"})
	case err != nil:
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"error": "feature store unavailable"})
	}
	return c.JSON(baselineResponse{CustomerID: id, Bytes: len(v)})
}

// serveBaseline serves the baseline on cfg.addr until ctx ends, with a
// Redis client built like the real server's (features.RedisOptions:
// context deadlines honoured, one retry, no CLIENT SETINFO). It announces
// the bound address on stdout as "listening on HOST:PORT".
func serveBaseline(ctx context.Context, cfg config, stdout io.Writer) error {
	rdb := redis.NewUniversalClient(features.RedisOptions([]string{cfg.redisAddr}, cfg.redisPassword, features.DefaultTimeouts()))
	defer rdb.Close()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		return fmt.Errorf("baseline: redis at %s: %w", cfg.redisAddr, err)
	}

	b := &baseline{rdb: rdb, prefix: cfg.prefix}
	app := fiber.New(fiber.Config{
		AppName:               "nbp-baseline",
		DisableStartupMessage: true,
		ReadTimeout:           5 * time.Second,
		WriteTimeout:          5 * time.Second,
		IdleTimeout:           30 * time.Second,
		StrictRouting:         true,
		CaseSensitive:         true,
	})
	app.Server().CloseOnShutdown = true
	app.Get("/v1/customers/:customer_id/recommendations", b.handleRecommend)

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("baseline: listen: %w", err)
	}
	fmt.Fprintf(stdout, "listening on %s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- app.Listener(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("baseline: serve: %w", err)
	case <-ctx.Done():
	}
	if err := app.ShutdownWithTimeout(5 * time.Second); err != nil {
		return fmt.Errorf("baseline: shutdown: %w", err)
	}
	return <-errc
}
