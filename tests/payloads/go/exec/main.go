// exec: os/exec with pipes to and from the child, an exit status, and a
// missing program. The child is a shell pipeline (/bin/sh).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

func main() {
	cmd := exec.Command("/bin/sh", "-c", "tr a-z A-Z; echo done >&2; exit 3")
	cmd.Stdin = strings.NewReader("hello from go\n")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	fmt.Printf("stdout %q stderr %q\n", out, stderr.String())
	if errors.As(err, &exit) {
		fmt.Printf("exit code %d\n", exit.ExitCode())
	} else {
		fmt.Printf("unexpected error %v\n", err)
	}

	c := exec.Command("/bin/cat")
	in, _ := c.StdinPipe()
	pipe, _ := c.StdoutPipe()
	if err := c.Start(); err != nil {
		fmt.Println("start:", err)
		os.Exit(1)
	}
	io.WriteString(in, "through cat\n")
	in.Close()
	b, _ := io.ReadAll(pipe)
	fmt.Printf("cat: %q wait: %v\n", b, c.Wait())

	err = exec.Command("/nonexistent/program").Run()
	fmt.Println("missing:", err)
}
