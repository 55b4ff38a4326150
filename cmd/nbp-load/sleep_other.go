//go:build !linux

package main

import "time"

// precisionThread does nothing off Linux (see sleep_linux.go).
func precisionThread() (undo func()) { return func() {} }

// preciseSleep blocks for d (see sleep_linux.go for why Linux differs).
func preciseSleep(d time.Duration) { time.Sleep(d) }
