package scheduler

import (
	"container/list"
	"sync"
)

// Tier names a cache tier.
type Tier string

const (
	TierNode   Tier = "node"
	TierSite   Tier = "site"
	TierGlobal Tier = "global"
)

// LRU is a cache of datasets bounded in bytes, evicting the least
// recently used. It holds names and sizes; the bytes live on disk. Safe
// for concurrent use.
type LRU struct {
	mu       sync.Mutex
	capacity int64
	used     int64
	order    *list.List // front = most recent
	items    map[string]*list.Element
	hits     int64
	misses   int64
	// OnEvict, when set, is called (with the lock held) for each entry
	// evicted, so the bytes on disk can go too.
	OnEvict func(name string)
}

type lruItem struct {
	name string
	size int64
}

// NewLRU returns a cache of capacity bytes (<= 0: holds nothing).
func NewLRU(capacity int64) *LRU {
	return &LRU{capacity: capacity, order: list.New(), items: map[string]*list.Element{}}
}

// Get reports whether name is cached, counting a hit or a miss.
func (c *LRU) Get(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[name]; ok {
		c.order.MoveToFront(e)
		c.hits++
		return true
	}
	c.misses++
	return false
}

// Has reports whether name is cached, without counting.
func (c *LRU) Has(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.items[name]
	return ok
}

// Put caches name, evicting least recently used entries to make room;
// it returns the evicted names. A dataset larger than the whole cache is
// not cached.
func (c *LRU) Put(name string, size int64) (evicted []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[name]; ok {
		it := e.Value.(*lruItem)
		c.used += size - it.size
		it.size = size
		c.order.MoveToFront(e)
	} else {
		if size > c.capacity {
			return nil
		}
		c.items[name] = c.order.PushFront(&lruItem{name, size})
		c.used += size
	}
	for c.used > c.capacity {
		e := c.order.Back()
		it := e.Value.(*lruItem)
		c.order.Remove(e)
		delete(c.items, it.name)
		c.used -= it.size
		evicted = append(evicted, it.name)
		if c.OnEvict != nil {
			c.OnEvict(it.name)
		}
	}
	return evicted
}

// Names lists what is cached.
func (c *LRU) Names() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]bool, len(c.items))
	for k := range c.items {
		out[k] = true
	}
	return out
}

// Stats returns hits, misses and bytes used.
func (c *LRU) Stats() (hits, misses, used int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.misses, c.used
}

// Fetch is where one dataset came from for a job.
type Fetch struct {
	Dataset string
	From    Tier // the tier that had it
	// Bytes is how much moved; CrossSite says it crossed between sites
	// (from the global tier into another site).
	Bytes     int64
	CrossSite bool
}

// Tiers is the cache hierarchy one job's inputs go through: the node's
// cache, its site's cache, then the global store.
type Tiers struct {
	Node, Site *LRU
	// GlobalSite is the site holding the global store.
	GlobalSite string
	SiteName   string // the site the job runs in
}

// Resolve finds a dataset of size bytes for a job on a node of site,
// filling the caches on the way down, and reports where it came from.
func (t *Tiers) Resolve(name string, size int64) Fetch {
	switch {
	case t.Node != nil && t.Node.Get(name):
		return Fetch{Dataset: name, From: TierNode}
	case t.Site != nil && t.Site.Get(name):
		if t.Node != nil {
			t.Node.Put(name, size)
		}
		return Fetch{Dataset: name, From: TierSite, Bytes: size}
	}
	if t.Site != nil {
		t.Site.Put(name, size)
	}
	if t.Node != nil {
		t.Node.Put(name, size)
	}
	return Fetch{Dataset: name, From: TierGlobal, Bytes: size, CrossSite: t.GlobalSite != t.SiteName}
}
