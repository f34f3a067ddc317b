package connector

import "strings"

// suggest returns the candidate closest to name, or "" when none is close
// enough to be a plausible typo. Comparison ignores case.
func suggest(name string, candidates []string) string {
	lname := strings.ToLower(name)
	best, bestDist := "", -1
	for _, c := range candidates {
		d := editDistance(lname, strings.ToLower(c))
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	// Allow about one edit per four characters (at least one, at most
	// three), so "clientSecert" finds "clientSecret" but "port" does not
	// find "host".
	limit := min(max(len([]rune(name))/4, 1), 3)
	if best != "" && bestDist <= limit {
		return best
	}
	// Otherwise a unique candidate that starts with name, as "bitbucket"
	// does "bitbucket-cloud".
	if len([]rune(name)) < 4 {
		return ""
	}
	prefixed := ""
	for _, c := range candidates {
		if strings.HasPrefix(strings.ToLower(c), lname) {
			if prefixed != "" {
				return ""
			}
			prefixed = c
		}
	}
	return prefixed
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent characters each
// cost one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// Three rolling rows: two back, previous and current.
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
