// Allocation pressure with forced and background collections on two Ps;
// the checksums depend only on the data, not on when the GC ran.
package main

import (
	"fmt"
	"runtime"
	"sync"
)

type node struct {
	next  *node
	value int
	pad   [8]int
}

func build(n, seed int) *node {
	var head *node
	for i := 0; i < n; i++ {
		head = &node{next: head, value: (i * seed) % 1000}
	}
	return head
}

func sum(head *node) int {
	s := 0
	for ; head != nil; head = head.next {
		s += head.value
	}
	return s
}

func main() {
	runtime.GOMAXPROCS(2)
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	// Two goroutines churn through short-lived lists, keeping a few.
	var wg sync.WaitGroup
	totals := make([]int, 2)
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			var kept []*node
			for round := 0; round < 200; round++ {
				l := build(10000, round+g)
				totals[g] += sum(l)
				if round%50 == 0 {
					kept = append(kept, l)
				}
				m := make(map[int][]byte)
				for i := 0; i < 200; i++ {
					m[i] = make([]byte, 512)
				}
			}
			for _, l := range kept {
				totals[g] += sum(l)
			}
		}(g)
	}
	for i := 0; i < 5; i++ {
		runtime.GC()
	}
	wg.Wait()
	runtime.GC()

	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	fmt.Printf("totals: %d %d\n", totals[0], totals[1])
	fmt.Printf("collections ran: %v\n", after.NumGC-before.NumGC >= 6)
	fmt.Printf("allocated over 100 MB: %v\n", after.TotalAlloc-before.TotalAlloc > 100<<20)
	fmt.Printf("heap shrank back below 64 MB: %v\n", after.HeapAlloc < 64<<20)
}
