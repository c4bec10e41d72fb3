// Command pause is the sandbox ("pause") container of the local node's pods
// (localhost/thumbnail-pause, images/pause/Containerfile): it holds the pod's namespaces,
// sleeps, reaps orphaned children (it is PID 1 when the pod shares its PID namespace) and
// exits 0 on SIGTERM or SIGINT. Static (CGO_ENABLED=0), so the image is FROM scratch.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const version = "thumbnail-pause 1.0"

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "-v", "--version", "version":
			fmt.Println(version)
			return
		default:
			fmt.Fprintf(os.Stderr, "usage: %s [--version]\n", os.Args[0])
			os.Exit(2)
		}
	}
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		fmt.Fprintf(os.Stderr, "pause: %v, exiting\n", sig)
		os.Exit(0)
	}
}

// reap collects every exited child without blocking (SIGCHLD coalesces, so loop).
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
