// An unrecovered panic: exit status 2 and the runtime's report on stderr.
// Usage: panic main|goroutine.
package main

import (
	"fmt"
	"os"
	"time"
)

func main() {
	fmt.Println("about to panic")
	if len(os.Args) == 2 && os.Args[1] == "goroutine" {
		go func() { panic("deliberate panic in a goroutine") }()
		time.Sleep(time.Hour)
	}
	panic("deliberate panic from the Go payload")
}
