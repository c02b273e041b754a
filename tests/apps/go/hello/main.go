// A Go net/http app as a user writes it: listens on $PORT (default 3000),
// or on fd 3 when handed a socket by systemd-style socket activation
// (LISTEN_FDS=1, LISTEN_PID its own pid: net.FileListener, as
// coreos/go-systemd's activation package does), answers "hello from
// <pid>", and on SIGTERM shuts down gracefully (http.Server.Shutdown: stop
// accepting, close idle connections, finish in-flight requests).
// Built twice by tests/apps/setup-go-apps.sh: dynamically linked (cgo, the
// default) and static (CGO_ENABLED=0).
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "3000"
	}
	if d, err := time.ParseDuration(os.Getenv("START_DELAY")); err == nil {
		time.Sleep(d)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %d\n", os.Getpid())
	})
	srv := &http.Server{Addr: ":" + port, Handler: mux}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	var err error
	if pid, _ := strconv.Atoi(os.Getenv("LISTEN_PID")); os.Getenv("LISTEN_FDS") == "1" && pid == os.Getpid() {
		var ln net.Listener
		ln, err = net.FileListener(os.NewFile(3, "corefit"))
		if err == nil {
			err = srv.Serve(ln)
		}
	} else {
		err = srv.ListenAndServe()
	}
	if err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
