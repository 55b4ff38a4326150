package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/audit"
)

// MaxEvents is the most events one POST /v1/events may carry.
const MaxEvents = 500

// clockSkew is how far in the future an event's time may be.
const clockSkew = 5 * time.Minute

// EventStore records outcomes and reads their daily counters.
type EventStore interface {
	RecordEvents(ctx context.Context, evs []features.Event, o features.EventOptions) ([]bool, error)
	Stats(ctx context.Context, from, to time.Time) ([]features.StatRow, error)
}

// EventsRequest is the body of POST /v1/events.
type EventsRequest struct {
	Events []json.RawMessage `json:"events"`
}

// EventRequest is one outcome.
type EventRequest struct {
	EventID    string `json:"event_id"`
	CustomerID string `json:"customer_id"`
	ProductID  string `json:"product_id"`
	Channel    string `json:"channel"`
	Type       string `json:"type"`
	DecisionID string `json:"decision_id,omitempty"`
	At         string `json:"at"`
	// AgentID is the WeCom userid of the agent whose panel sent the event
	// (channel wecom_agent only); Team their team or branch, optional.
	AgentID string `json:"agent_id,omitempty"`
	Team    string `json:"team,omitempty"`
}

// EventsResponse says what happened to each event of a batch.
type EventsResponse struct {
	Accepted   int              `json:"accepted"`   // new events, written
	Duplicates int              `json:"duplicates"` // already recorded (a retry): counted once
	Rejected   []EventRejection `json:"rejected"`
}

// EventRejection is an event refused, with its index in the batch.
type EventRejection struct {
	Index   int    `json:"index"`
	EventID string `json:"event_id,omitempty"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Event rejection codes.
const (
	CodeInvalidEvent      = "invalid_event"
	CodeInvalidEventID    = "invalid_event_id"
	CodeInvalidType       = "invalid_type"
	CodeUnknownProduct    = "unknown_product"
	CodeInvalidDecisionID = "invalid_decision_id"
	CodeInvalidTime       = "invalid_time"
	CodeTimeInFuture      = "time_in_future"
	CodeTooOld            = "too_old"
	CodeTooManyEvents     = "too_many_events"
	CodeDecisionNotFound  = "decision_not_found"
	CodeInvalidDate       = "invalid_date"
	CodeInvalidAgent      = "invalid_agent"
	CodeInvalidGroup      = "invalid_group_by"
)

// MaxTeamRunes caps a team's name, counted in characters.
const MaxTeamRunes = 32

// handleEvents serves POST /v1/events: every valid event is written
// before the answer, each once however often it is sent; the invalid ones
// are refused with their index and reason.
func (s *Server) handleEvents(c *fiber.Ctx) error {
	if s.events == nil {
		return fiber.ErrNotFound
	}
	var req EventsRequest
	d := json.NewDecoder(bytes.NewReader(c.Body()))
	d.DisallowUnknownFields()
	if err := d.Decode(&req); err != nil || d.More() {
		return badRequest(CodeBadRequest, `the body must be {"events": [...]}`)
	}
	if len(req.Events) == 0 {
		return badRequest(CodeBadRequest, "no events")
	}
	if len(req.Events) > MaxEvents {
		return badRequest(CodeTooManyEvents, fmt.Sprintf("at most %d events per request", MaxEvents))
	}
	cat := s.pipeline.Catalog()
	now := s.pipeline.Now()
	resp := EventsResponse{Rejected: []EventRejection{}}
	evs := make([]features.Event, 0, len(req.Events))
	seen := make(map[string]bool, len(req.Events))
	who := principal(c)
	for i, raw := range req.Events {
		ev, rej := parseEvent(raw, cat, now)
		if rej == nil && who != nil {
			rej = who.own(&ev)
		}
		if rej != nil {
			rej.Index = i
			resp.Rejected = append(resp.Rejected, *rej)
			continue
		}
		key := ev.CustomerID + "\x00" + ev.ID
		if seen[key] {
			resp.Duplicates++ // the same event twice in one batch counts once
			continue
		}
		seen[key] = true
		evs = append(evs, ev)
	}
	if len(evs) > 0 {
		ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.EventsTimeout)
		defer cancel()
		if err := s.attribute(ctx, evs); err != nil {
			return err
		}
		fresh, err := s.events.RecordEvents(ctx, evs, features.EventOptions{Policy: cat.Contact, Now: now})
		if err != nil {
			return &apiError{status: fiber.StatusServiceUnavailable, code: CodeUnavailable, message: "events could not be stored; nothing was recorded, retry"}
		}
		for _, f := range fresh {
			if f {
				resp.Accepted++
			} else {
				resp.Duplicates++
			}
		}
	}
	return c.JSON(resp)
}

// attribute sets each event's strategy from its decision's audit record.
func (s *Server) attribute(ctx context.Context, evs []features.Event) error {
	var ids []string
	for i := range evs {
		evs[i].Strategy = "unknown"
		if evs[i].DecisionID != "" {
			ids = append(ids, evs[i].DecisionID)
		}
	}
	if s.audit == nil || len(ids) == 0 {
		return nil
	}
	strategies, err := s.audit.Strategies(ctx, ids)
	if err != nil {
		return &apiError{status: fiber.StatusServiceUnavailable, code: CodeUnavailable, message: "events could not be stored; nothing was recorded, retry"}
	}
	for i := range evs {
		if st, ok := strategies[evs[i].DecisionID]; ok {
			evs[i].Strategy = st
		}
	}
	return nil
}

func parseEvent(raw json.RawMessage, cat *catalog.Catalog, now time.Time) (features.Event, *EventRejection) {
	var e EventRequest
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&e); err != nil {
		msg := "an event is an object of event_id, customer_id, product_id, channel, type, decision_id and at"
		if strings.Contains(err.Error(), "unknown field") {
			msg = "unknown field in event: " + strings.TrimPrefix(err.Error(), "json: ")
		}
		return features.Event{}, &EventRejection{Code: CodeInvalidEvent, Message: msg}
	}
	rej := func(code, msg string) (features.Event, *EventRejection) {
		id := e.EventID
		if !features.ValidID(id) {
			id = ""
		}
		return features.Event{}, &EventRejection{EventID: id, Code: code, Message: msg}
	}
	if !features.ValidID(e.EventID) {
		return rej(CodeInvalidEventID, "event_id must be 1 to 64 of A-Z a-z 0-9 _ -")
	}
	if !features.ValidID(e.CustomerID) {
		return rej(CodeInvalidCustomerID, "customer_id must be 1 to 64 of A-Z a-z 0-9 _ -")
	}
	ch, err := catalog.ParseChannel(e.Channel)
	if err != nil {
		return rej(CodeInvalidChannel, "channel must be "+catalog.ChannelList())
	}
	switch e.Type {
	case features.EventImpression, features.EventClick, features.EventConversion, features.EventDismiss:
	default:
		return rej(CodeInvalidType, "type must be impression, click, conversion or dismiss")
	}
	if _, err := cat.Product(e.ProductID); err != nil {
		return rej(CodeUnknownProduct, "product_id is not in the catalog")
	}
	if e.DecisionID != "" && !service.ValidDecisionID(e.DecisionID) {
		return rej(CodeInvalidDecisionID, "decision_id is not a decision id")
	}
	at, err := time.Parse(time.RFC3339Nano, e.At)
	if err != nil {
		return rej(CodeInvalidTime, "at must be an RFC 3339 time")
	}
	if at.After(now.Add(clockSkew)) {
		return rej(CodeTimeInFuture, "at is in the future")
	}
	window := time.Duration(cat.Contact.EventWindowDays) * 24 * time.Hour
	if at.Before(now.Add(-window)) {
		return rej(CodeTooOld, fmt.Sprintf("at is older than the %d-day window", cat.Contact.EventWindowDays))
	}
	switch {
	case e.AgentID == "" && e.Team != "":
		return rej(CodeInvalidAgent, "team needs agent_id")
	case e.AgentID != "" && ch != catalog.WecomAgent:
		return rej(CodeInvalidAgent, "agent_id is for events of the wecom_agent channel")
	case e.AgentID != "" && !ValidAgentID(e.AgentID):
		return rej(CodeInvalidAgent, "agent_id must be a WeCom userid: 1 to 64 of A-Z a-z 0-9 _ - @ ., a letter or digit first")
	case !ValidTeam(e.Team):
		return rej(CodeInvalidAgent, fmt.Sprintf("team must be at most %d characters of UTF-8 text, without | or control characters", MaxTeamRunes))
	}
	return features.Event{
		ID: e.EventID, CustomerID: e.CustomerID, ProductID: e.ProductID, Channel: ch,
		Type: e.Type, DecisionID: e.DecisionID, At: at, Agent: e.AgentID, Team: e.Team,
	}, nil
}

// own makes an event from a page's session the principal's own: an agent
// posts events of the wecom_agent channel, as themselves, with the team
// their login gave them.
func (p *Principal) own(ev *features.Event) *EventRejection {
	switch {
	case ev.Channel != catalog.WecomAgent:
		return &EventRejection{EventID: ev.ID, Code: CodeInvalidAgent, Message: "a panel session posts events of the wecom_agent channel only"}
	case ev.Agent != "" && ev.Agent != p.UserID:
		return &EventRejection{EventID: ev.ID, Code: CodeInvalidAgent, Message: "an agent posts events as themselves only"}
	}
	ev.Agent, ev.Team = p.UserID, p.Team
	return nil
}

// ValidAgentID reports whether s is a WeCom userid: 1 to 64 bytes of
// letters, digits, '_', '-', '@' and '.', a letter or digit first.
func ValidAgentID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '-' && c != '@' && c != '.') {
			return false
		}
	}
	return true
}

// ValidTeam reports whether s may name a team: UTF-8 text of at most
// MaxTeamRunes characters, without '|' (the statistics' separator) or
// control characters; "" for none.
func ValidTeam(s string) bool {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxTeamRunes {
		return false
	}
	for _, r := range s {
		if r == '|' || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// StatsResponse is the body of GET /v1/stats.
type StatsResponse struct {
	From string     `json:"from"`
	To   string     `json:"to"`
	Rows []StatsRow `json:"rows"`
	// Uplift compares the model with the control group on each channel
	// that has impressions under both, whatever the grouping.
	Uplift []Uplift `json:"uplift"`
	// Challenger compares the challenger model with the champion and with
	// the control group, the same way; empty without a challenger.
	Challenger []Comparison `json:"challenger"`
	// Decisions counts the decisions served over the range, by channel
	// and strategy, with the degraded ones: the share of fallback and
	// degraded answers (from the audit trail; empty without one).
	Decisions []audit.DecisionCount `json:"decisions"`
}

// StatsRow is what a product achieved on a channel under a strategy over
// the range; with group_by=agent or team, what an agent or a team achieved
// with it.
type StatsRow struct {
	AgentID        string   `json:"agent_id,omitempty"`
	Team           string   `json:"team,omitempty"`
	ProductID      string   `json:"product_id"`
	Channel        string   `json:"channel"`
	Strategy       string   `json:"strategy"`
	Impressions    int64    `json:"impressions"`
	Clicks         int64    `json:"clicks"`
	Conversions    int64    `json:"conversions"`
	Dismissals     int64    `json:"dismissals"`
	ClickThrough   *float64 `json:"click_through_rate"` // clicks / impressions; null without impressions
	ConversionRate *float64 `json:"conversion_rate"`    // conversions / impressions; null without impressions
}

// handleStats serves GET /v1/stats?from=YYYY-MM-DD&to=YYYY-MM-DD&group_by=product|agent|team.
func (s *Server) handleStats(c *fiber.Ctx) error {
	if s.events == nil {
		return fiber.ErrNotFound
	}
	now := s.pipeline.Now().In(catalog.Zone())
	today := now.Format(time.DateOnly)
	var fromS, toS string
	group := "product"
	var bad error
	c.Context().QueryArgs().VisitAll(func(k, v []byte) {
		switch string(k) {
		case "from":
			fromS = string(v)
		case "to":
			toS = string(v)
		case "group_by":
			group = string(v)
		default:
			bad = badRequest(CodeUnknownParameter, "unknown query parameter; allowed: from, to, group_by")
		}
	})
	if bad != nil {
		return bad
	}
	if group != "product" && group != "agent" && group != "team" {
		return badRequest(CodeInvalidGroup, "group_by must be product, agent or team")
	}
	if toS == "" {
		toS = today
	}
	to, err := time.ParseInLocation(time.DateOnly, toS, catalog.Zone())
	if err != nil {
		return badRequest(CodeInvalidDate, "to must be a date, YYYY-MM-DD")
	}
	if fromS == "" {
		fromS = to.AddDate(0, 0, -6).Format(time.DateOnly)
	}
	from, err := time.ParseInLocation(time.DateOnly, fromS, catalog.Zone())
	if err != nil {
		return badRequest(CodeInvalidDate, "from must be a date, YYYY-MM-DD")
	}
	if from.After(to) || to.Sub(from) > 366*24*time.Hour {
		return badRequest(CodeInvalidDate, "from must not be after to, and the range at most 366 days")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), time.Second)
	defer cancel()
	days, err := s.events.Stats(ctx, from, to)
	if err != nil {
		return &apiError{status: fiber.StatusServiceUnavailable, code: CodeUnavailable, message: "statistics unavailable"}
	}
	var overall []StatsRow // every event once: for the uplift
	sum := map[[5]string]*StatsRow{}
	for _, d := range days {
		if d.Agent == "" {
			overall = append(overall, StatsRow{ProductID: d.ProductID, Channel: d.Channel, Strategy: d.Strategy,
				Impressions: d.Impressions, Clicks: d.Clicks, Conversions: d.Conversions, Dismissals: d.Dismisses})
		}
		// The rows without an agent count every event once; an agent's
		// rows count theirs again, by agent and team.
		var agent, team string
		switch {
		case group == "product" && d.Agent != "", group != "product" && d.Agent == "":
			continue
		case group == "agent":
			agent, team = d.Agent, d.Team
		case group == "team":
			team = d.Team
		}
		k := [5]string{d.ProductID, d.Channel, d.Strategy, agent, team}
		r := sum[k]
		if r == nil {
			r = &StatsRow{AgentID: agent, Team: team, ProductID: d.ProductID, Channel: d.Channel, Strategy: d.Strategy}
			sum[k] = r
		}
		r.Impressions += d.Impressions
		r.Clicks += d.Clicks
		r.Conversions += d.Conversions
		r.Dismissals += d.Dismisses
	}
	resp := StatsResponse{From: from.Format(time.DateOnly), To: to.Format(time.DateOnly), Rows: make([]StatsRow, 0, len(sum)),
		Uplift: uplifts(overall), Challenger: challengerComparisons(overall), Decisions: []audit.DecisionCount{}}
	if s.audit != nil {
		dc, err := s.audit.Counts(ctx, from, to)
		if err != nil {
			return &apiError{status: fiber.StatusServiceUnavailable, code: CodeUnavailable, message: "statistics unavailable"}
		}
		resp.Decisions = append(resp.Decisions, dc...)
	}
	for _, r := range sum {
		if r.Impressions > 0 {
			ctr := math.Round(float64(r.Clicks)/float64(r.Impressions)*1e4) / 1e4
			cvr := math.Round(float64(r.Conversions)/float64(r.Impressions)*1e4) / 1e4
			r.ClickThrough, r.ConversionRate = &ctr, &cvr
		}
		resp.Rows = append(resp.Rows, *r)
	}
	sort.Slice(resp.Rows, func(i, j int) bool {
		a, b := resp.Rows[i], resp.Rows[j]
		if a.AgentID != b.AgentID {
			return a.AgentID < b.AgentID
		}
		if a.Team != b.Team {
			return a.Team < b.Team
		}
		if a.ProductID != b.ProductID {
			return a.ProductID < b.ProductID
		}
		if a.Channel != b.Channel {
			return a.Channel < b.Channel
		}
		return a.Strategy < b.Strategy
	})
	return c.JSON(resp)
}

// handleDecision serves GET /v1/decisions/{decision_id}: the audit record.
func (s *Server) handleDecision(c *fiber.Ctx) error {
	if s.audit == nil {
		return fiber.ErrNotFound
	}
	id := c.Params("decision_id")
	if !service.ValidDecisionID(id) {
		return badRequest(CodeInvalidDecisionID, "decision_id must be a 26-character decision id")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), time.Second)
	defer cancel()
	r, err := s.audit.Get(ctx, id)
	if errors.Is(err, audit.ErrNotFound) {
		return &apiError{status: fiber.StatusNotFound, code: CodeDecisionNotFound, message: "no record of this decision (never made, or past its retention)"}
	}
	if errors.Is(err, audit.ErrBehind) {
		c.Set(fiber.HeaderRetryAfter, "1")
		return &apiError{status: fiber.StatusServiceUnavailable, code: CodeUnavailable, message: "the audit trail is still writing the records kept during a Redis outage; retry shortly"}
	}
	if err != nil {
		return &apiError{status: fiber.StatusServiceUnavailable, code: CodeUnavailable, message: "audit trail unavailable"}
	}
	resp := DecisionRecord{Record: r}
	if s.shadows != nil {
		if sr, err := s.shadows.Get(ctx, id); err == nil {
			resp.Shadow = &sr
		}
	}
	return c.JSON(resp)
}

// DecisionRecord is the body of GET /v1/decisions/{decision_id}: the
// audit record and, when the shadow version scored the decision, what it
// would have served (never served).
type DecisionRecord struct {
	audit.Record
	Shadow *audit.Record `json:"shadow,omitempty"`
}
