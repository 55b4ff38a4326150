package features

import (
	"strconv"
	"time"

	"github.com/directops/nbp/catalog"
)

// Keys names every key nbp keeps in Redis, under one prefix. Keys of one
// customer share the hash tag {<customer_id>}, and so the slot of a Redis
// Cluster; a batch run's own keys share {batch:<run>}.
//
//	<prefix>{<id>}:f                        string: the customer's feature vector (see AppendRecord)
//	<prefix>{<id>}:c                        hash: the customer's contact state
//	<prefix>{<id>}:e                        hash: the customer's recorded event ids
//	<prefix>{<id>}:p                        hash: the customer's events counted but not yet confirmed
//	<prefix>{<id>}:r:<run>                  string: the customer's offers in a batch run, product ids by rank
//	<prefix>{idx:<bucket>}                  sorted set: the customer index, for paging the batch
//	<prefix>events                          stream: every acknowledged outcome event
//	<prefix>stats:<YYYYMMDD>                hash: a day's outcome counts (China time)
//	<prefix>{<stats key>}:m:<id>:<ev>       string: an event's counted mark
//	<prefix>{batch:<run>}:<name>            a batch run's state (volume, chunks, ckpt, done)
//	<prefix>batch:current                   string: the last batch run that completed
//	<prefix>decisions:<YYYYMMDDHHMM>:<n>    hash: audit records by decision id, a minute's in 16
//	<prefix>{wecom:<external_userid>}:customer  string: the customer a WeCom contact is linked to
type Keys struct{ prefix string }

// NewKeys returns the key names under prefix ("" for DefaultPrefix).
func NewKeys(prefix string) Keys {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return Keys{prefix: prefix}
}

// Vector is a customer's feature vector.
func (k Keys) Vector(id string) string { return k.prefix + "{" + id + "}:f" }

// Contact is a customer's contact state.
func (k Keys) Contact(id string) string { return k.prefix + "{" + id + "}:c" }

// Events is a customer's recorded event ids.
func (k Keys) Events(id string) string { return k.prefix + "{" + id + "}:e" }

// Pending is a customer's events counted but not yet confirmed.
func (k Keys) Pending(id string) string { return k.prefix + "{" + id + "}:p" }

// BatchResult is a customer's offers in a batch run.
func (k Keys) BatchResult(id, run string) string { return k.prefix + "{" + id + "}:r:" + run }

// Index is one bucket of the customer index.
func (k Keys) Index(bucket int) string { return k.prefix + "{idx:" + strconv.Itoa(bucket) + "}" }

// Stream is the stream of outcome events.
func (k Keys) Stream() string { return k.prefix + "events" }

// Stats is a day's outcome counts, the day in China time.
func (k Keys) Stats(day time.Time) string {
	return k.prefix + "stats:" + day.In(catalog.Zone()).Format("20060102")
}

// DecisionCounts is the set of a day's decision kinds (China time), each
// "channel|strategy|degraded", kept by the audit writer.
func (k Keys) DecisionCounts(day time.Time) string {
	return k.prefix + "decision-counts:" + day.In(catalog.Zone()).Format("20060102")
}

// DecisionCount is the HyperLogLog of the ids of a day's decisions of one
// kind: counted once however often they are written.
func (k Keys) DecisionCount(day time.Time, kind string) string {
	return k.DecisionCounts(day) + ":" + kind
}

// Counted is the mark that says an event is counted in the statistics hash
// stats. It hashes to the hash's slot: its hash tag is the hash's name or,
// when the prefix holds a tag, the same tag.
func (k Keys) Counted(stats, customerID, eventID string) string {
	suffix := ":m:" + customerID + ":" + eventID
	if hashTag(stats) != "" {
		return stats + suffix
	}
	return k.prefix + "{" + stats + "}" + suffix
}

// BatchRun is one of a batch run's own keys (volume, chunks, ckpt, done).
func (k Keys) BatchRun(run, name string) string { return k.prefix + "{batch:" + run + "}:" + name }

// Session is a page's login session, by the SHA-256 of its token (the
// token itself is never stored).
func (k Keys) Session(tokenHash string) string { return k.prefix + "session:" + tokenHash }

// BatchLatest names the last batch run that started.
func (k Keys) BatchLatest() string { return k.prefix + "batch:latest" }

// BatchPointer names the last batch run that completed.
func (k Keys) BatchPointer() string { return k.prefix + "batch:current" }

// WecomContact is the customer a WeCom external contact is linked to.
func (k Keys) WecomContact(externalUserID string) string {
	return k.prefix + "{wecom:" + externalUserID + "}:customer"
}

// AuditRecords is one of the 16 hashes of a minute's audit records.
func (k Keys) AuditRecords(minute string, shard int) string {
	return k.prefix + "decisions:" + minute + ":" + strconv.Itoa(shard)
}
