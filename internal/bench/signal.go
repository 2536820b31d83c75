package bench

import (
	"os"
	"os/signal"
	"syscall"
)

// terminate is the signal that asks a child to stop gracefully.
var terminate os.Signal = syscall.SIGTERM

// stopOnSignal calls stop (once) on SIGINT or SIGTERM.
func stopOnSignal(stop func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-c
		stop()
	}()
}
