package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// parseCPUList reads a CPU list in taskset's form ("1", "2-3", "0,2")
// and checks every CPU is below numCPU. The CPUs come back sorted, once
// each.
func parseCPUList(s string, numCPU int) ([]int, error) {
	var cpus []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("CPU list %q: %q is not a CPU number", s, lo)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("CPU list %q: bad range %q", s, part)
			}
		}
		for c := a; c <= b; c++ {
			if c < 0 || c >= numCPU {
				return nil, fmt.Errorf("CPU list %q: CPU %d does not exist (this machine has %d)", s, c, numCPU)
			}
			cpus = append(cpus, c)
		}
	}
	slices.Sort(cpus)
	return slices.Compact(cpus), nil
}

// otherCPUs is every CPU below numCPU not in cpus.
func otherCPUs(cpus []int, numCPU int) []int {
	var rest []int
	for c := range numCPU {
		if !slices.Contains(cpus, c) {
			rest = append(rest, c)
		}
	}
	return rest
}

// cpuList formats CPUs for taskset -c.
func cpuList(cpus []int) string {
	s := make([]string, len(cpus))
	for i, c := range cpus {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}

// pinned returns the command line that runs path with args on cpus
// (through taskset), or path and args unchanged when cpus is empty. A
// pinned Go child also gets GOMAXPROCS set to its CPU count in env.
func pinned(cpus []int, path string, args, env []string) (string, []string, []string) {
	if len(cpus) == 0 {
		return path, args, env
	}
	return "taskset", append([]string{"-c", cpuList(cpus), path}, args...),
		append(env, "GOMAXPROCS="+strconv.Itoa(len(cpus)))
}
