// time.Sleep, time.Timer, time.Ticker and time.After. Durations are
// checked against lower bounds, never printed.
package main

import (
	"fmt"
	"runtime"
	"time"
)

func main() {
	runtime.GOMAXPROCS(2)

	start := time.Now()
	time.Sleep(20 * time.Millisecond)
	fmt.Printf("slept at least 20ms: %v\n", time.Since(start) >= 20*time.Millisecond)

	start = time.Now()
	t := time.NewTimer(30 * time.Millisecond)
	<-t.C
	fmt.Printf("timer fired after at least 30ms: %v\n", time.Since(start) >= 30*time.Millisecond)

	stopped := time.NewTimer(time.Hour)
	fmt.Printf("stopping a pending timer: %v\n", stopped.Stop())

	start = time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	for i := 0; i < 5; i++ {
		<-tick.C
	}
	tick.Stop()
	fmt.Printf("5 ticks took at least 25ms: %v\n", time.Since(start) >= 25*time.Millisecond)

	never := make(chan int)
	select {
	case <-never:
		fmt.Println("impossible")
	case <-time.After(10 * time.Millisecond):
		fmt.Println("time.After won the select")
	}

	// AfterFunc runs its function in a goroutine of its own.
	done := make(chan string)
	time.AfterFunc(5*time.Millisecond, func() { done <- "AfterFunc ran" })
	fmt.Println(<-done)
}
