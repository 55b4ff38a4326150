package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is the unit of CPU times in /proc/<pid>/stat (USER_HZ), 100
// on every Linux this runs on.
const clockTicks = 100

// cpuMeter measures how many cores nbp-load and its children used over a
// run, to tell who got the machine's CPU.
type cpuMeter struct {
	pids  map[string]int // children by role
	start time.Time
	used  map[string]time.Duration
}

func newCPUMeter(pids map[string]int) *cpuMeter {
	m := &cpuMeter{pids: pids, start: time.Now(), used: make(map[string]time.Duration)}
	m.used = m.sample()
	return m
}

func (m *cpuMeter) sample() map[string]time.Duration {
	s := make(map[string]time.Duration, len(m.pids)+2)
	if d, err := selfCPU(); err == nil {
		s["load"] = d
	}
	if d, err := machineCPU(); err == nil {
		s["machine"] = d
	}
	for role, pid := range m.pids {
		if d, err := procCPU(pid); err == nil {
			s[role] = d
		}
	}
	return s
}

// cores returns the cores each role used since newCPUMeter: "load" is
// nbp-load itself, the others the children given by role, and "other"
// every other process on the machine (the idle server included).
func (m *cpuMeter) cores() map[string]float64 {
	wall := time.Since(m.start)
	out := make(map[string]float64)
	for role, d := range m.sample() {
		if before, ok := m.used[role]; ok && wall > 0 {
			out[role] = (d - before).Seconds() / wall.Seconds()
		}
	}
	if busy, ok := out["machine"]; ok {
		delete(out, "machine")
		ours := 0.0
		for _, c := range out {
			ours += c
		}
		out["other"] = max(0, busy-ours)
	}
	return out
}

// selfCPU returns the user and system CPU time nbp-load has used.
func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// procCPU returns the user and system CPU time process pid has used, from
// /proc (Linux only).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: fields count from the ")".
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	var ticks int64
	for _, v := range f[11:13] { // utime, stime (fields 14 and 15)
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// machineCPU returns the CPU time all processes have used, from the first
// line of /proc/stat (Linux only): user, nice, system, irq, softirq and
// steal time, in clock ticks (guest time is part of user).
func machineCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, errors.New("parse /proc/stat")
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// busyCores returns how many cores the whole machine kept busy over the
// next d (Linux only).
func busyCores(d time.Duration) (float64, error) {
	before, err := machineCPU()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	time.Sleep(d)
	after, err := machineCPU()
	if err != nil {
		return 0, err
	}
	return (after - before).Seconds() / time.Since(start).Seconds(), nil
}
