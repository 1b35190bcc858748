// A Go HTTP server for clusterd, standard library only: serves the listening socket it inherits
// at fd 3 and drains on SIGTERM (http.Server.Shutdown: stop accepting, finish requests, exit 0).
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// inheritedListener wraps fd 3, the first socket of the systemd socket-activation protocol
// that clusterd speaks (go-systemd's activation.Listeners does the same, with more checks).
func inheritedListener() (net.Listener, error) {
	// LISTEN_PID names the process the sockets are meant for; anyone else must not use them.
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return nil, errors.New("LISTEN_PID is not this process: no socket from clusterd")
	}
	if count, err := strconv.Atoi(os.Getenv("LISTEN_FDS")); err != nil || count < 1 {
		return nil, errors.New("LISTEN_FDS is not a count >= 1: no socket from clusterd")
	}
	// Not inherited by programs this one starts.
	syscall.CloseOnExec(3)
	file := os.NewFile(3, "http")
	// FileListener works on a dup of the fd, so the original can go.
	defer file.Close()
	return net.FileListener(file)
}

func main() {
	listener, err := inheritedListener()
	if err != nil {
		log.Fatalf("hello-go: %v", err)
	}
	server := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello from pid %d (worker %s of %s)\n",
				os.Getpid(), os.Getenv("CLUSTERD_WORKER_ID"), os.Getenv("CLUSTERD_WORKERS"))
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}

	stopped := make(chan struct{})
	go func() {
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
		<-signals
		// Shutdown closes only this process's copy of the socket: the other workers and
		// clusterd keep it open and keep accepting. The deadline stays under clusterd's
		// stop.grace so the drain ends on our terms, not by SIGKILL.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := server.Shutdown(ctx); err != nil {
			log.Printf("hello-go: shutdown: %v", err)
		}
		close(stopped)
	}()

	if err := server.Serve(listener); err != http.ErrServerClosed {
		log.Fatalf("hello-go: serve: %v", err)
	}
	<-stopped
}
