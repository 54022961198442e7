package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// timeoutError is the cause of a run that -timeout ended: it says what
// the run was waiting for.
type timeoutError struct {
	limit time.Duration
	what  string
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("-timeout %v reached while waiting for %s", e.limit, e.what)
}

// stage returns a context for a wait of the run, for what (such as "a
// token from https://..."), that ends at the run's deadline with a
// *timeoutError that names what. On a terminal, a wait that lasts is told
// on stderr. Call done when the wait is over.
func (c *command) stage(ctx context.Context, what string) (_ context.Context, done func()) {
	ctx, cancel := context.WithDeadlineCause(ctx, c.deadline, &timeoutError{limit: c.o.timeout, what: what})
	if !c.stderrTTY {
		return ctx, cancel
	}
	var mu sync.Mutex // held while the notice is told; over is set under it
	over := false
	t := time.AfterFunc(c.noticeAfter, func() {
		mu.Lock()
		defer mu.Unlock()
		if !over {
			c.tell("still waiting for %s (-timeout %v, Ctrl-C to stop)", what, c.o.timeout)
		}
	})
	return ctx, func() {
		t.Stop()
		mu.Lock()
		over = true
		mu.Unlock()
		cancel()
	}
}

// bounded returns f's result, or the cause of ctx's end if ctx ends
// first: a call of the file system (a FIFO, a device) may block whatever
// its context says. f then goes on in the background, abandoned, until
// it returns or the process exits.
func bounded[T any](ctx context.Context, f func() (T, error)) (T, error) {
	var zero T
	if ctx.Err() != nil {
		return zero, context.Cause(ctx)
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := f()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		return zero, context.Cause(ctx)
	}
}
