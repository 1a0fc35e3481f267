package httpauth

import (
	"crypto/sha256"
	"sync"
	"time"
)

// cache holds allowed decisions keyed by the SHA-256 of the token, so a
// heap dump or a debugger shows no usable credential. When full it first
// drops expired entries and, if that frees nothing, everything: simpler
// than an LRU and always correct, since a dropped entry only costs a fresh
// review.
type cache struct {
	mu      sync.Mutex
	max     int
	entries map[[sha256.Size]byte]cacheEntry
}

type cacheEntry struct {
	user    User
	expires time.Time
}

func newCache(maxEntries int) *cache {
	return &cache{max: maxEntries, entries: make(map[[sha256.Size]byte]cacheEntry)}
}

func (c *cache) get(key [sha256.Size]byte, now time.Time) (User, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return User{}, false
	}
	if !now.Before(e.expires) {
		delete(c.entries, key)
		return User{}, false
	}
	return e.user, true
}

func (c *cache) put(key [sha256.Size]byte, u User, expires, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.max {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			clear(c.entries)
		}
	}
	// The cached User is never handed out as is (Wrap clones it), so no
	// handler can change what a later request sees.
	c.entries[key] = cacheEntry{user: u, expires: expires}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// throttle lets one event of each kind through per interval and counts
// the rest, so a persistent failure is logged about once a minute rather
// than once per request.
type throttle struct {
	mu         sync.Mutex
	every      time.Duration
	last       map[string]time.Time
	suppressed map[string]int
}

func newThrottle(every time.Duration) *throttle {
	return &throttle{every: every, last: map[string]time.Time{}, suppressed: map[string]int{}}
}

// allow reports whether an event of kind may be logged now and how many
// were suppressed since the last one that was. Kinds are a small fixed
// set, so the maps stay small.
func (t *throttle) allow(kind string, now time.Time) (ok bool, suppressed int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if last, seen := t.last[kind]; seen && now.Sub(last) < t.every {
		t.suppressed[kind]++
		return false, 0
	}
	t.last[kind] = now
	suppressed = t.suppressed[kind]
	t.suppressed[kind] = 0
	return true, suppressed
}
