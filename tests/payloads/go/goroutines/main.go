// Goroutines on two Ps: channels, select, sync.WaitGroup and sync.Mutex.
// Everything printed is a total or a fixed order, never a schedule.
package main

import (
	"fmt"
	"runtime"
	"sync"
)

func main() {
	runtime.GOMAXPROCS(2)

	// Fan out over an unbuffered channel, fan in over a buffered one.
	jobs := make(chan int)
	results := make(chan int, 16)
	var workers sync.WaitGroup
	for w := 0; w < 8; w++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for j := range jobs {
				results <- j * j
			}
		}()
	}
	go func() {
		for i := 1; i <= 1000; i++ {
			jobs <- i
		}
		close(jobs)
	}()
	go func() {
		workers.Wait()
		close(results)
	}()
	sum, n := 0, 0
	for r := range results {
		sum += r
		n++
	}
	fmt.Printf("squares: %d results, sum %d\n", n, sum)

	// Many goroutines contending for one mutex.
	var mu sync.Mutex
	var wg sync.WaitGroup
	counter := 0
	for g := 0; g < 100; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	fmt.Printf("mutex counter: %d\n", counter)

	// Ping-pong: each send waits for the other goroutine.
	ping, pong := make(chan int), make(chan int)
	go func() {
		for v := range ping {
			pong <- v + 1
		}
		close(pong)
	}()
	v := 0
	for i := 0; i < 10000; i++ {
		ping <- v
		v = <-pong
	}
	close(ping)
	_, open := <-pong
	fmt.Printf("ping-pong: %d, pong closed: %v\n", v, !open)

	// select over two producers until both are done.
	a, b := make(chan int), make(chan int)
	for _, c := range []chan int{a, b} {
		go func(c chan int) {
			for i := 1; i <= 500; i++ {
				c <- i
			}
			close(c)
		}(c)
	}
	fromA, fromB := 0, 0
	for a != nil || b != nil {
		select {
		case x, ok := <-a:
			if !ok {
				a = nil
			} else {
				fromA += x
			}
		case x, ok := <-b:
			if !ok {
				b = nil
			} else {
				fromB += x
			}
		}
	}
	fmt.Printf("select: %d + %d\n", fromA, fromB)
}
