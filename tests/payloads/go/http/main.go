// An HTTP server and client in one program over loopback (IPv4 and IPv6),
// plus the interface list Go reads through netlink. Prints only what is
// the same natively and under km. With "serve ADDR" it is a plain server.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
)

func serve(network, addr string) {
	ln, err := net.Listen(network, addr)
	if err != nil {
		fmt.Println(network, "listen:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.URL.Query().Get("name"))
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	url := "http://" + ln.Addr().String() + "/hello?name="
	var wg sync.WaitGroup
	bodies := make([]string, 20)
	for i := range bodies {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := http.Get(fmt.Sprint(url, i))
			if err != nil {
				bodies[i] = err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			bodies[i] = string(b)
		}(i)
	}
	wg.Wait()
	ok := true
	for i, b := range bodies {
		if b != fmt.Sprint("hello ", i) {
			fmt.Println(network, "request", i, "got", b)
			ok = false
		}
	}
	fmt.Println(network, "20 concurrent requests ok:", ok)
	srv.Close()
}

func main() {
	// "serve ADDR": a plain server until killed, for scripts/bench-servers.
	if len(os.Args) == 3 && os.Args[1] == "serve" {
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello\n") })
		fmt.Println("ready")
		if err := http.ListenAndServe(os.Args[2], nil); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
	}
	serve("tcp4", "127.0.0.1:0")
	serve("tcp6", "[::1]:0")
	ifs, err := net.Interfaces()
	if err != nil {
		fmt.Println("interfaces:", err)
		os.Exit(1)
	}
	names := []string{}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 {
			names = append(names, i.Name)
		}
	}
	fmt.Println("loopback interfaces:", strings.Join(names, ","))
}
