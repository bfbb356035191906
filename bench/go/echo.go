// Echo server for benchmarks: one goroutine per connection, standard library
// only. Run with GOMAXPROCS=1 to compare against single-threaded peers.
//
// Usage: echo -addr 127.0.0.1:7000
package main

import (
	"flag"
	"log"
	"net"
)

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 16*1024)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:7000", "listen address")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("go echo listening on %s", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Printf("accept: %v", err)
			continue
		}
		// Go sets TCP_NODELAY on TCP connections by default.
		go serve(c)
	}
}
