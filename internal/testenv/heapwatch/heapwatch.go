// Package heapwatch samples the live heap during a test or benchmark, for peak-memory figures.
// It is test support, apart from testenv so that light packages need not link the servers.
package heapwatch

import (
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Start samples the live heap every millisecond until the test or benchmark ends and
// returns a function giving the peak (calling it stops the sampling).
func Start(tb testing.TB) func() uint64 {
	runtime.GC()
	var peak atomic.Uint64
	done, stopped := make(chan struct{}), make(chan struct{})
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	go func() {
		defer close(stopped)
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	var once sync.Once
	stop := func() { once.Do(func() { close(done); <-stopped }) }
	tb.Cleanup(stop)
	return func() uint64 { stop(); return peak.Load() }
}
