package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// pinSelf keeps every thread of nbp-load, present and future (a new
// thread inherits its creator's mask), on cpus, and sizes GOMAXPROCS to
// them.
func pinSelf(cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	// Twice: a thread started during the first pass by a thread not yet
	// pinned has the old mask.
	for range 2 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("pin nbp-load: %w", err)
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil {
				return fmt.Errorf("pin nbp-load thread %d: %w", tid, err)
			}
		}
	}
	runtime.GOMAXPROCS(len(cpus))
	return nil
}
