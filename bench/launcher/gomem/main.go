// A memory-hungry Go handler for bench/launcher/gomemlimit.sh: each worker
// keeps LIVE_MIB of live data, and every request allocates and touches
// GARBAGE_MIB of short-lived buffers. Without GOMEMLIMIT, Go's collector
// lets the heap grow to about twice the live data (GOGC=100) whatever the
// container's limit; with it, it collects harder near the limit.
package main

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
)

func mib(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

var live [][]byte

func main() {
	for i := 0; i < mib("LIVE_MIB", 150); i++ {
		b := make([]byte, 1<<20)
		for j := range b {
			b[j] = byte(j)
		}
		live = append(live, b)
	}
	garbage := mib("GARBAGE_MIB", 64)
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		sum := 0
		for i := 0; i < garbage; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = byte(i)
			}
			sum += int(b[0])
		}
		fmt.Fprintf(w, "%d %d %d\n", os.Getpid(), len(live), sum)
	})
	port := os.Getenv("PORT")
	if port == "" {
		port = "3000"
	}
	if err := http.ListenAndServe("127.0.0.1:"+port, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
