package importer

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/clientspec"
)

// loopbackPath is the pattern of spec.loopbackRedirect.path (api/v1alpha1).
var loopbackPath = regexp.MustCompile(`^/[-A-Za-z0-9._~!$&'()*+,;=:@%/]*$`)

// loopbackURI splits http://localhost:<port><path> into its port and path when
// spec.loopbackRedirect's expansion gives back exactly that string: a port of 1-65535 written
// without leading zeros, and a path loopbackRedirect accepts. 127.0.0.1 and [::1] are not folded:
// the expansion writes localhost only.
func loopbackURI(u string) (int, string, bool) {
	rest, ok := strings.CutPrefix(u, "http://localhost:")
	if !ok {
		return 0, "", false
	}
	i := strings.IndexByte(rest, '/')
	if i <= 0 {
		return 0, "", false
	}
	port, err := strconv.Atoi(rest[:i])
	if err != nil || port < 1 || port > 65535 || strconv.Itoa(port) != rest[:i] {
		return 0, "", false
	}
	path := rest[i:]
	if len(path) > clientspec.MaxLoopbackPathLength || !loopbackPath.MatchString(path) {
		return 0, "", false
	}
	return port, path, true
}

// foldLoopback finds the longest run of at least two consecutive ports among the URIs
// http://localhost:<port><path> of one path (the first such run in the list on a tie; order in
// the list does not matter, as in Dex) and returns it as a loopbackRedirect of at most 100 ports,
// with the indexes of the URIs it does not cover, in their order. uris must hold no duplicates.
func foldLoopback(uris []string) (*dexv1.LoopbackRedirect, []int) {
	type run struct {
		path     string
		from, to int
		first    int // index in uris of the run's first URI, for ties
	}
	byPath := map[string]map[int]int{} // path -> port -> index in uris
	var paths []string
	for i, u := range uris {
		port, path, ok := loopbackURI(u)
		if !ok {
			continue
		}
		if byPath[path] == nil {
			byPath[path] = map[int]int{}
			paths = append(paths, path)
		}
		byPath[path][port] = i
	}
	var best *run
	for _, path := range paths {
		ports := make([]int, 0, len(byPath[path]))
		for p := range byPath[path] {
			ports = append(ports, p)
		}
		slices.Sort(ports)
		for start := 0; start < len(ports); {
			end := start
			for end+1 < len(ports) && ports[end+1] == ports[end]+1 {
				end++
			}
			to := min(ports[end], ports[start]+clientspec.MaxLoopbackPorts-1)
			first := len(uris)
			for p := ports[start]; p <= to; p++ {
				first = min(first, byPath[path][p])
			}
			r := run{path: path, from: ports[start], to: to, first: first}
			if r.to > r.from && (best == nil || r.to-r.from > best.to-best.from || r.to-r.from == best.to-best.from && r.first < best.first) {
				best = &r
			}
			start = end + 1
		}
	}
	kept := make([]int, 0, len(uris))
	for i, u := range uris {
		if best != nil {
			if port, path, ok := loopbackURI(u); ok && path == best.path && port >= best.from && port <= best.to {
				continue
			}
		}
		kept = append(kept, i)
	}
	if best == nil {
		return nil, kept
	}
	return &dexv1.LoopbackRedirect{Ports: []int32{int32(best.from), int32(best.to)}, Path: best.path}, kept
}
