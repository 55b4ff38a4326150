package catalog

import (
	"fmt"
	"time"
)

// zoneOffset is China Standard Time's offset from UTC: eight hours, with
// no daylight saving time.
const zoneOffset = 8 * 3600

// zone is the bank's local time, in which every date is read.
var zone = time.FixedZone("CST", zoneOffset)

// Zone returns the bank's time zone, China Standard Time (UTC+8). Every
// date nbp reads or writes is a day in this zone: the catalog's sale
// windows and levers, the export's risk-assessment dates, the statistics
// days, the batch run ids and the contact policy's days.
func Zone() *time.Location { return zone }

// Day returns the day number of t: days since 1970-01-01, China time.
func Day(t time.Time) int {
	return int((t.Unix() + zoneOffset) / 86400)
}

// Midnight returns the start of t's day, China time.
func Midnight(t time.Time) time.Time {
	t = t.In(zone)
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, zone)
}

// Days returns the midnights of the days from from's to to's, China
// time, both included.
func Days(from, to time.Time) []time.Time {
	var days []time.Time
	for d := Midnight(from); !d.After(to); d = d.AddDate(0, 0, 1) {
		days = append(days, d)
	}
	return days
}

// defaultWritten is the day the embedded catalog's dates were written for:
// its version names it.
var defaultWritten = time.Date(2026, 11, 27, 0, 0, 0, 0, zone)

// DefaultAt returns the embedded demo catalog for a demo bank as of now:
// its sale windows and levers moved by whole years, so that now falls in
// the year after the day they were written for (2026-11-27). A demo run in
// 2031 then sees the catalog as it was in 2027, windows that close within
// the year closed and the year-end lever in season at the year's end; a
// demo run before 2027-11-27 sees it unchanged. The version says how far
// it was moved ("demo-2026.11.27+4y").
func DefaultAt(now time.Time) (*Catalog, error) {
	c, err := Default()
	if err != nil {
		return nil, err
	}
	years := 0
	for !now.Before(defaultWritten.AddDate(years+1, 0, 0)) {
		years++
	}
	if years == 0 {
		return c, nil
	}
	move := func(w *Window) {
		if !w.From.IsZero() {
			w.From = w.From.AddDate(years, 0, 0)
		}
		if !w.Until.IsZero() {
			w.Until = w.Until.AddDate(years, 0, 0)
		}
	}
	for i := range c.Products {
		move(&c.Products[i].SaleWindow)
	}
	c.Levers = append([]Lever(nil), c.Levers...)
	for i := range c.Levers {
		move(&c.Levers[i].Window)
	}
	c.Version += fmt.Sprintf("+%dy", years)
	return c, nil
}
