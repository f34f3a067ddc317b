package harness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"

	"golang.org/x/net/html"
)

const (
	// maxLoginSteps bounds the requests DexPasswordLogin makes.
	maxLoginSteps = 20
	// maxPageBytes bounds the size of a page DexPasswordLogin reads.
	maxPageBytes = 1 << 20
	// pageSnippetBytes is how much of an unexpected page an error quotes.
	pageSnippetBytes = 1024
)

// DexPasswordLogin plays the browser in an authorization code flow against Dex with a password
// connector (the local password database): it GETs authURL, follows Dex's redirects, picks the
// password connector on the connector selection page if Dex shows one, submits email and
// password to the password form (fields "login" and "password"), grants access on the approval
// page if Dex shows one (it does not with oauth2.skipApprovalScreen), and finally GETs the
// client's loopback redirect URI (http://localhost:<port>/... or http://127.0.0.1:<port>/...)
// carrying the code, so that the waiting client (e.g. `tofu login`) receives it. An error
// redirect (error=... in the query), rejected credentials (Dex answers 401 with the form again:
// the error says "Dex rejected the credentials") or an unexpected page is an error.
// httpClient may be nil; its redirect policy and cookie jar are not used (a copy is made).
func DexPasswordLogin(ctx context.Context, httpClient *http.Client, authURL, email, password string) error {
	client := &http.Client{}
	if httpClient != nil {
		*client = *httpClient
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		return fmt.Errorf("failed to create cookie jar: %w", err)
	}
	client.Jar = jar
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	start, err := url.Parse(authURL)
	if err != nil {
		return fmt.Errorf("failed to parse authorization URL: %w", err)
	}
	redirectURI, err := url.Parse(start.Query().Get("redirect_uri"))
	if err != nil || redirectURI.Host == "" {
		return fmt.Errorf("failed to find a redirect_uri in authorization URL %q", authURL)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return fmt.Errorf("failed to build authorization request: %w", err)
	}
	submittedPassword := false
	for step := 0; step < maxLoginSteps; step++ {
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("failed to request %s: %w", req.URL.Redacted(), err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxPageBytes))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("failed to read %s: %w", req.URL.Redacted(), err)
		}

		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := resp.Location()
			if err != nil {
				return fmt.Errorf("failed to follow redirect from %s: %w", req.URL.Redacted(), err)
			}
			if sameEndpoint(loc, redirectURI) {
				return deliverCode(ctx, client, loc)
			}
			if req, err = http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil); err != nil {
				return fmt.Errorf("failed to build request: %w", err)
			}
			continue
		}

		page, err := html.Parse(bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("failed to parse page %s: %w", req.URL.Redacted(), err)
		}
		forms := findForms(page)
		if submittedPassword && formWithField(forms, "password") != nil {
			// Dex answers a wrong password with 401 and the form again.
			return fmt.Errorf("failed to log in as %s: Dex rejected the credentials (%s): %s", email, resp.Status, snippet(body))
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("failed to log in: %s answered %s: %s", req.URL.Redacted(), resp.Status, snippet(body))
		}
		var next *http.Request
		switch {
		case formWithField(forms, "password") != nil:
			submittedPassword = true
			f := formWithField(forms, "password")
			f.values.Set("login", email)
			f.values.Set("password", password)
			next, err = f.request(ctx, req.URL)
		case formWithValue(forms, "approval", "approve") != nil:
			next, err = formWithValue(forms, "approval", "approve").request(ctx, req.URL)
		default:
			link := connectorLink(page, req.URL)
			if link == nil {
				return fmt.Errorf("failed to log in: unexpected page at %s: %s", req.URL.Redacted(), snippet(body))
			}
			next, err = http.NewRequestWithContext(ctx, http.MethodGet, link.String(), nil)
		}
		if err != nil {
			return fmt.Errorf("failed to build request: %w", err)
		}
		req = next
	}
	return fmt.Errorf("failed to log in: no redirect to %s after %d requests", redirectURI.Redacted(), maxLoginSteps)
}

// deliverCode checks the final redirect for an OAuth2 error and GETs it.
func deliverCode(ctx context.Context, client *http.Client, loc *url.URL) error {
	q := loc.Query()
	if e := q.Get("error"); e != "" {
		return fmt.Errorf("failed to log in: Dex redirected with error %q: %s", e, q.Get("error_description"))
	}
	if q.Get("code") == "" {
		return fmt.Errorf("failed to log in: Dex redirected to %s without a code", loc.Redacted())
	}
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{WroteRequest: func(info httptrace.WroteRequestInfo) { wrote.Store(info.Err == nil) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, loc.String(), nil)
	if err != nil {
		return fmt.Errorf("failed to build callback request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		if wrote.Load() {
			// The request reached the callback server. `tofu login` closes its server as soon as
			// it has the code, often before its handler has answered, so an EOF or reset here
			// is normal; whether the login succeeded is for the client (tofu's exit) to tell.
			return nil
		}
		return fmt.Errorf("failed to deliver the code to %s: %w", loc.Host, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxPageBytes))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("failed to deliver the code to %s: %s: %s", loc.Host, resp.Status, snippet(body))
	}
	return nil
}

// sameEndpoint reports whether u is the redirect URI want (scheme, host, port and path; Dex
// may accept localhost and 127.0.0.1 interchangeably, so loopback hosts compare equal).
func sameEndpoint(u, want *url.URL) bool {
	if u.Scheme != want.Scheme || u.Path != want.Path || u.Port() != want.Port() {
		return false
	}
	return u.Hostname() == want.Hostname() || (isLoopback(u.Hostname()) && isLoopback(want.Hostname()))
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// htmlForm is a parsed <form> with the values of its inputs.
type htmlForm struct {
	method string
	action string
	values url.Values
}

// request builds the submission of f, resolving its action against base (an empty action
// submits to base itself).
func (f *htmlForm) request(ctx context.Context, base *url.URL) (*http.Request, error) {
	target, err := base.Parse(f.action)
	if err != nil {
		return nil, fmt.Errorf("failed to parse form action %q: %w", f.action, err)
	}
	if !strings.EqualFold(f.method, http.MethodPost) {
		target.RawQuery = f.values.Encode()
		return http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), strings.NewReader(f.values.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req, nil
}

// findForms returns every form of the page with its named inputs.
func findForms(n *html.Node) []*htmlForm {
	var forms []*htmlForm
	var walk func(n *html.Node, current *htmlForm)
	walk = func(n *html.Node, current *htmlForm) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "form":
				current = &htmlForm{method: attr(n, "method"), action: attr(n, "action"), values: url.Values{}}
				forms = append(forms, current)
			case "input":
				if current != nil && attr(n, "name") != "" {
					current.values.Set(attr(n, "name"), attr(n, "value"))
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, current)
		}
	}
	walk(n, nil)
	return forms
}

func formWithField(forms []*htmlForm, name string) *htmlForm {
	for _, f := range forms {
		if _, ok := f.values[name]; ok {
			return f
		}
	}
	return nil
}

func formWithValue(forms []*htmlForm, name, value string) *htmlForm {
	for _, f := range forms {
		if f.values.Get(name) == value {
			return f
		}
	}
	return nil
}

// connectorLink returns the link to the password connector on Dex's connector selection page:
// the first link to .../auth/local..., else the first link to .../auth/<connector>.
func connectorLink(page *html.Node, base *url.URL) *url.URL {
	var first, local *url.URL
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "a" {
			if u, err := base.Parse(attr(n, "href")); err == nil && strings.Contains(u.Path, "/auth/") {
				if first == nil {
					first = u
				}
				if local == nil && strings.Contains(u.Path, "/auth/local") {
					local = u
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(page)
	if local != nil {
		return local
	}
	return first
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// snippet returns the visible text of a page, shortened, for error messages.
func snippet(body []byte) string {
	page, err := html.Parse(bytes.NewReader(body))
	if err != nil {
		return string(body[:min(len(body), pageSnippetBytes)])
	}
	var b strings.Builder
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && (n.Data == "script" || n.Data == "style") {
			return
		}
		if n.Type == html.TextNode {
			if s := strings.TrimSpace(n.Data); s != "" {
				b.WriteString(s)
				b.WriteString(" ")
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(page)
	s := strings.TrimSpace(b.String())
	if len(s) > pageSnippetBytes {
		s = s[:pageSnippetBytes] + "..."
	}
	return s
}
