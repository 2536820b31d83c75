package jwtauth

import (
	"container/list"
	"sync"
)

// tokenCache is a bounded LRU of verified tokens, keyed by the SHA-256 of
// the token. It holds claims, never tokens. It is safe for concurrent use.
type tokenCache struct {
	mu    sync.Mutex
	size  int
	ll    *list.List // front: most recently used; values are *cacheEntry
	items map[[32]byte]*list.Element
	gen   uint64 // bumped by clear; a put from an older generation is dropped
}

type cacheEntry struct {
	key    [32]byte
	claims Claims
}

func newTokenCache(size int) *tokenCache {
	return &tokenCache{size: size, ll: list.New(), items: make(map[[32]byte]*list.Element)}
}

func (c *tokenCache) get(k [32]byte) (Claims, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[k]
	if !ok {
		return Claims{}, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*cacheEntry).claims, true
}

// generation returns the value to pass to put for a verification that
// starts now.
func (c *tokenCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put stores claims unless the cache was cleared since gen was read, so
// that a token verified with a key removed meanwhile is not cached.
func (c *tokenCache) put(k [32]byte, claims Claims, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if e, ok := c.items[k]; ok {
		e.Value.(*cacheEntry).claims = claims
		c.ll.MoveToFront(e)
		return
	}
	c.items[k] = c.ll.PushFront(&cacheEntry{key: k, claims: claims})
	for c.ll.Len() > c.size {
		last := c.ll.Back()
		c.ll.Remove(last)
		delete(c.items, last.Value.(*cacheEntry).key)
	}
}

func (c *tokenCache) remove(k [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.ll.Remove(e)
		delete(c.items, k)
	}
}

func (c *tokenCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ll.Init()
	clear(c.items)
	c.gen++
}

func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
