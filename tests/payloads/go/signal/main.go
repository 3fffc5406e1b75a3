// A signal sent from outside. Usage: signal notify|default.
//
//	notify  - os/signal.Notify for SIGUSR1; prints "ready", waits on the
//	          channel, prints the signal and exits 0
//	default - no Notify; prints "ready" and spins: the runtime makes the
//	          process die of the signal (e.g. SIGTERM: status 143)
package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

func main() {
	runtime.GOMAXPROCS(2)
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: signal notify|default")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "notify":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGUSR1)
		fmt.Println("ready")
		fmt.Printf("received: %v\n", <-c)
	case "default":
		fmt.Println("ready")
		x := uint64(1)
		for {
			x = x*6364136223846793005 + 1442695040888963407
		}
	default:
		fmt.Fprintln(os.Stderr, "usage: signal notify|default")
		os.Exit(2)
	}
}
