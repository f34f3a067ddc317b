package importer

import (
	"strconv"
	"strings"
)

// maxName is the length of a DNS-1123 label, the names given to imported objects.
const maxName = 63

// names hands out object names derived from Dex ids, each used once: the DexStaticClients and
// DexConnectors of one import share one set, so that their Secrets (<name>-dex-import) never
// collide either.
type names struct{ used map[string]bool }

// take returns a DNS-1123 label for id: lower-cased, every run of characters other than a-z, 0-9
// and '-' replaced by one '-', trimmed of '-' at both ends, at most 63 characters, and made unique
// with a -2, -3, ... suffix. fallback is used when nothing of id is left.
func (n *names) take(id, fallback string) string {
	if n.used == nil {
		n.used = map[string]bool{}
	}
	base := label(id)
	if base == "" {
		base = fallback
	}
	name := base
	for i := 2; n.used[name]; i++ {
		suffix := "-" + strconv.Itoa(i)
		name = strings.TrimRight(truncate(base, maxName-len(suffix)), "-") + suffix
	}
	n.used[name] = true
	return name
}

func label(id string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(id) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
			dash = false
			continue
		}
		if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.Trim(truncate(strings.Trim(b.String(), "-"), maxName), "-")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
