package clientspec

import (
	"fmt"
	"net/url"
	"strconv"

	"k8s.io/apimachinery/pkg/util/validation/field"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/tenancy"
)

// The bounds of what a DexStaticClient's redirect URIs may make the manager build. They are the
// schema's (the markers of api/v1alpha1/dexstaticclient_types.go; a test checks that the CRD
// says the same), re-checked here because the controller must not trust that every object it
// reads passed admission: one stored before the bounds, or written while the webhooks were off,
// reaches it all the same.
const (
	// MaxRedirectURIs and MaxRedirectURILength bound spec.redirectURIs.
	MaxRedirectURIs      = 200
	MaxRedirectURILength = 2048
	// MaxLoopbackPorts and MaxLoopbackPathLength bound spec.loopbackRedirect (tofu login uses 11
	// ports and /login).
	MaxLoopbackPorts      = 100
	MaxLoopbackPathLength = 256
	// DefaultLoopbackPath is spec.loopbackRedirect.path's default.
	DefaultLoopbackPath = "/login"

	// MaxEffectiveRedirectURIs is the most entries the effective list (RedirectURIs, and
	// status.redirectURIs) has.
	MaxEffectiveRedirectURIs = MaxRedirectURIs + MaxLoopbackPorts
	// MaxEffectiveRedirectBytes bounds the bytes of the effective list. The largest list the
	// bounds above allow (200 × 2048 + 100 × 278 bytes, about 428 KiB) fits; no object's
	// expansion comes near 1 MiB.
	MaxEffectiveRedirectBytes = 512 << 10

	// loopbackPrefix starts every expanded URI; a port adds at most 5 digits.
	loopbackPrefix = "http://localhost:"
	maxPortDigits  = 5
	// maxReported is how many problems with single redirect URIs are listed, and maxShown how
	// many bytes of an offending value a message quotes.
	maxReported = 10
	maxShown    = 128
)

// Check returns the first problem Problems finds, as an error naming the field and the fix; nil
// when there is none. It costs a few small allocations whatever the spec holds: the size of the
// expansion is computed from the spec's numbers, never by building it.
func Check(spec *dexv1.DexStaticClientSpec) error {
	errs := Problems(spec, field.NewPath("spec"))
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return fmt.Errorf("%w (and %d more problems with the redirect URIs)", errs[0], len(errs)-1)
}

// Problems lists what is wrong with a spec's redirect URIs (spec.redirectURIs and
// spec.loopbackRedirect, under path): bounds exceeded, URIs that are not absolute https URLs (or
// http on a loopback host), malformed loopback ranges and paths. Each problem names its field
// and the fix; offending values are quoted shortened. The webhook reports them all; the
// controller refuses a spec with any (Check).
func Problems(spec *dexv1.DexStaticClientSpec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	uris := path.Child("redirectURIs")
	count, size := int64(len(spec.RedirectURIs)), int64(0)
	if len(spec.RedirectURIs) > MaxRedirectURIs {
		errs = append(errs, field.Invalid(uris, fmt.Sprintf("%d URIs", len(spec.RedirectURIs)),
			fmt.Sprintf("at most %d redirect URIs are allowed; remove some, or use spec.loopbackRedirect for a range of localhost ports", MaxRedirectURIs)))
	}
	reported := 0
	for i, u := range spec.RedirectURIs {
		size += int64(len(u))
		if reported >= maxReported {
			continue
		}
		if len(u) > MaxRedirectURILength {
			errs = append(errs, field.Invalid(uris.Index(i), shorten(u),
				fmt.Sprintf("is %d bytes; a redirect URI may have at most %d: shorten it", len(u), MaxRedirectURILength)))
			reported++
		} else if msg := RedirectProblem(u); msg != "" {
			errs = append(errs, field.Invalid(uris.Index(i), shorten(u), msg))
			reported++
		}
	}
	if lr := spec.LoopbackRedirect; lr != nil {
		ports, perURI, problems := loopbackSize(lr, path.Child("loopbackRedirect"))
		errs = append(errs, problems...)
		count += ports
		size += ports * perURI
	}
	// Implied by the bounds above; checked on its own so that the bound on the whole list holds
	// whatever the bounds of its parts become.
	if len(errs) == 0 && (count > MaxEffectiveRedirectURIs || size > MaxEffectiveRedirectBytes) {
		errs = append(errs, field.Invalid(path, fmt.Sprintf("%d redirect URIs, %d bytes", count, size),
			fmt.Sprintf("spec.redirectURIs and spec.loopbackRedirect expand to more than %d redirect URIs or %d bytes; remove redirect URIs or narrow spec.loopbackRedirect.ports",
				MaxEffectiveRedirectURIs, MaxEffectiveRedirectBytes)))
	}
	return errs
}

// loopbackSize checks spec.loopbackRedirect and returns how many URIs it expands to and the
// most bytes one of them has (both 0 when it is invalid).
func loopbackSize(lr *dexv1.LoopbackRedirect, path *field.Path) (int64, int64, field.ErrorList) {
	var errs field.ErrorList
	ports := path.Child("ports")
	if len(lr.Ports) != 2 {
		return 0, 0, append(errs, field.Invalid(ports, fmt.Sprintf("%d items", len(lr.Ports)),
			"must be [from, to], e.g. [10000, 10010]"))
	}
	from, to := int64(lr.Ports[0]), int64(lr.Ports[1])
	switch {
	case from < 1 || to > 65535:
		errs = append(errs, field.Invalid(ports, portRange(from, to), "ports must be between 1 and 65535, e.g. [10000, 10010]"))
	case from > to:
		errs = append(errs, field.Invalid(ports, portRange(from, to), "must be [from, to] with from <= to, e.g. [10000, 10010]"))
	case to-from+1 > MaxLoopbackPorts:
		errs = append(errs, field.Invalid(ports, portRange(from, to),
			fmt.Sprintf("covers %d ports; at most %d are allowed: narrow the range, e.g. [10000, 10010] as tofu login uses", to-from+1, MaxLoopbackPorts)))
	}
	p := lr.Path
	if p == "" {
		p = DefaultLoopbackPath
	}
	switch {
	case len(p) > MaxLoopbackPathLength:
		errs = append(errs, field.Invalid(path.Child("path"), shorten(p),
			fmt.Sprintf("is %d bytes; at most %d are allowed: shorten it, e.g. /login", len(p), MaxLoopbackPathLength)))
	case !isURLPath(p):
		errs = append(errs, field.Invalid(path.Child("path"), shorten(p),
			"must be a URL path: start with / and hold only letters, digits and -._~!$&'()*+,;=:@%/ (no query or fragment), e.g. /login"))
	}
	if len(errs) > 0 {
		return 0, 0, errs
	}
	return to - from + 1, int64(len(loopbackPrefix) + maxPortDigits + len(p)), nil
}

// RedirectProblem says what is wrong with one redirect URI, "" when nothing: it must be an
// absolute https URL, or plain http on a loopback host (localhost, 127.0.0.0/8, ::1). The
// webhook and the controller apply this same rule (the CRD's CEL rule says the same, a little
// more strictly: IPv4 loopback only in dotted-quad form).
func RedirectProblem(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return "must be an absolute URL, e.g. https://app.example.com/callback"
	}
	switch {
	case u.Scheme == "https":
		return ""
	case u.Scheme == "http" && tenancy.LoopbackHost(u.Hostname()):
		return ""
	case u.Scheme == "http":
		return "plain http is allowed only on loopback hosts (localhost, 127.0.0.1, ::1); use https"
	}
	return "must be an http(s) URL"
}

// isURLPath reports whether p matches the schema's pattern of loopbackRedirect.path:
// ^/[-A-Za-z0-9._~!$&'()*+,;=:@%/]*$ (RFC 3986 path characters).
func isURLPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	for i := 1; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-' || c == '.' || c == '_' || c == '~' || c == '!' || c == '$' || c == '&' || c == '\'' ||
			c == '(' || c == ')' || c == '*' || c == '+' || c == ',' || c == ';' || c == '=' || c == ':' ||
			c == '@' || c == '%' || c == '/':
		default:
			return false
		}
	}
	return true
}

func portRange(from, to int64) string {
	return "[" + strconv.FormatInt(from, 10) + ", " + strconv.FormatInt(to, 10) + "]"
}

// shorten quotes at most maxShown bytes of a value in a message (a status condition must not
// carry a megabyte a tenant wrote).
func shorten(s string) string {
	if len(s) <= maxShown {
		return s
	}
	return s[:maxShown] + "..."
}
