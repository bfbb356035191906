// HTTP/1.1 plaintext server for benchmarks using net/http from the standard
// library: GET /plaintext -> "Hello, World!" as text/plain. Run with
// GOMAXPROCS=1.
//
// Usage: http -addr 127.0.0.1:8080
package main

import (
	"flag"
	"log"
	"net/http"
)

var body = []byte("Hello, World!")

func plaintext(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("Server", "go")
	w.Write(body)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("/plaintext", plaintext)
	srv := &http.Server{Addr: *addr, Handler: mux}
	log.Printf("go http listening on %s", *addr)
	log.Fatal(srv.ListenAndServe())
}
