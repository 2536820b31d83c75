package ratelimit

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func BenchmarkMemoryAllow(b *testing.B) {
	r := Rule{Rate: 1_000_000, Per: time.Second, Burst: 1000}
	ctx := context.Background()
	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = fmt.Sprintf("198.51.%d.%d", i/256, i%256)
	}
	b.Run("single-key", func(b *testing.B) {
		m := NewMemory(MemoryOptions{})
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.Allow(ctx, "k", r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("single-key-parallel", func(b *testing.B) {
		m := NewMemory(MemoryOptions{})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := m.Allow(ctx, "k", r); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("many-keys-parallel", func(b *testing.B) {
		m := NewMemory(MemoryOptions{})
		var worker atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(worker.Add(1)) * 7919
			for pb.Next() {
				i++
				if _, err := m.Allow(ctx, keys[i%len(keys)], r); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("evicting-parallel", func(b *testing.B) {
		// More keys than MaxKeys: every new key evicts one.
		m := NewMemory(MemoryOptions{MaxKeys: 1000})
		var worker atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(worker.Add(1)) * 7919
			for pb.Next() {
				i++
				if _, err := m.Allow(ctx, keys[i%len(keys)], r); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("overflow-parallel", func(b *testing.B) {
		// More keys than MaxKeys and none refills: the table holds only
		// buckets worth keeping, so new keys are decided by the overflow
		// bucket (the limiter under a key-minting flood).
		m := NewMemory(MemoryOptions{MaxKeys: 1000})
		slow := Rule{Rate: 1, Per: time.Hour, Burst: 1}
		for _, k := range keys[:2000] {
			m.Allow(ctx, k, slow)
		}
		var worker atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(worker.Add(1)) * 7919
			for pb.Next() {
				i++
				if _, err := m.Allow(ctx, keys[i%len(keys)], slow); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

func BenchmarkRedisAllow(b *testing.B) {
	c := redisClient(b)
	r := Rule{Rate: 1_000_000, Per: time.Second, Burst: 1000}
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		l := NewRedis(c, RedisOptions{Prefix: testPrefix(b, c)})
		b.ReportAllocs()
		for b.Loop() {
			if _, err := l.Allow(ctx, "k", r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		l := NewRedis(c, RedisOptions{Prefix: testPrefix(b, c)})
		var worker atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			key := fmt.Sprintf("k%d", worker.Add(1)%64)
			for pb.Next() {
				if _, err := l.Allow(ctx, key, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
