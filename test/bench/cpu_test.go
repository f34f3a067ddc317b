package bench

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cpuTimes are the CPU seconds (user + system) used so far by this process ("bench", which
// holds the controllers and the writers) and by each of its child processes by command name
// (kube-apiserver, etcd, dex): on two shared cores, the budget every part of a phase draws on.
type cpuTimes map[string]float64

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times (100 on Linux).
const clockTicks = 100

// processCPU reads the CPU times of this process and its children from /proc.
func processCPU() cpuTimes {
	out := cpuTimes{}
	self := strconv.Itoa(os.Getpid())
	if _, _, t, ok := readStat("/proc/self/stat"); ok {
		out["bench"] += t
	}
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range paths {
		name, ppid, t, ok := readStat(p)
		if ok && ppid == self {
			out[name] += t
		}
	}
	return out
}

// readStat parses a /proc/<pid>/stat: the command name, the parent's pid and utime + stime in
// seconds.
func readStat(path string) (name, ppid string, seconds float64, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", 0, false
	}
	s := string(b)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return "", "", 0, false
	}
	name = s[open+1 : closing]
	f := strings.Fields(s[closing+1:])
	// After the name: state(0) ppid(1) ... utime(11) stime(12).
	if len(f) < 13 {
		return "", "", 0, false
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return "", "", 0, false
	}
	return name, f[1], (u + st) / clockTicks, true
}

// cpuSince returns the CPU seconds used by each process since before, and a line that prints
// them with the phase's wall time and the share of the machine's cores they took.
func cpuSince(before cpuTimes, wall time.Duration) (cpuTimes, string) {
	now := processCPU()
	used := cpuTimes{}
	for k, v := range now {
		used[k] = v - before[k]
	}
	var sb strings.Builder
	total := 0.0
	for _, k := range slices.Sorted(maps.Keys(used)) {
		fmt.Fprintf(&sb, " %s %.2fs", k, used[k])
		total += used[k]
	}
	fmt.Fprintf(&sb, " | total %.2f CPU-s in %.2fs wall (%.2f cores busy)", total, wall.Seconds(), total/wall.Seconds())
	return used, sb.String()
}
