package importer

import (
	"fmt"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/webhooks"
)

// Bounds of DexStaticClient fields the webhook's single-object check leaves to the CRD schema.
const (
	maxClientID     = 253
	maxDisplayName  = 256
	maxLogoURL      = 2048
	maxTrustedPeers = 100
)

// staticClient is what the file says of one static client, with the node of each field.
type staticClient struct {
	id, idEnv, secret, secretEnv, name, logoURL string
	public                                      bool
	redirectURIs, trustedPeers                  []string
	redirectNodes, peerNodes                    []*yaml.Node
	at                                          map[string]*yaml.Node // Dex's field name -> value node
}

// client imports one entry of staticClients (storage.Client of Dex: id, idEnv, secret,
// secretEnv, redirectURIs, trustedPeers, public, name, logoURL).
func (im *importer) client(field string, n *yaml.Node) {
	errsBefore := len(im.errs)
	c, ok := im.readClient(field, n)
	if !ok {
		return
	}
	f := func(name string) string { return field + "." + name }
	at := func(name string) *yaml.Node {
		if v := c.at[name]; v != nil {
			return v
		}
		return n
	}

	// The id: Dex requires exactly one of id and idEnv.
	id := c.id
	switch {
	case c.id != "" && c.idEnv != "":
		im.fail(at("idEnv"), f("idEnv"), "id and idEnv are exclusive (Dex refuses both); keep one")
	case c.idEnv != "":
		v, looked := im.lookup(at("idEnv"), f("idEnv"), c.idEnv)
		if !looked {
			im.fail(at("idEnv"), f("idEnv"), "Dex reads this client id from $%s; write it as id, or run the import with --expand-env where %s is set", c.idEnv, c.idEnv)
			break
		}
		id = v
		if id == "" {
			im.fail(at("idEnv"), f("idEnv"), "$%s is empty in this environment: the client would get another id (<namespace>-<name>); set it, or write the id as id", c.idEnv)
			break
		}
		im.warn(at("idEnv"), f("idEnv"), "the client id was read from $%s in this environment", c.idEnv)
	}
	if id == "" && c.idEnv == "" {
		im.fail(n, f("id"), "Required: every static client needs an id")
	}
	if id != "" && (len(id) > maxClientID || !idPattern.MatchString(id)) {
		im.fail(at("id"), f("id"), "%q cannot be a DexStaticClient spec.clientId: at most %d characters, letters, digits, '.', '_', ':' and '-', starting with a letter or digit; clients with other ids stay in Dex's config", shorten(id), maxClientID)
	}

	// The secret: Dex requires one of secret and secretEnv unless the client is public.
	var secretValue string
	hasSecret := false
	switch {
	case c.secret != "" && c.secretEnv != "":
		im.fail(at("secretEnv"), f("secretEnv"), "secret and secretEnv are exclusive (Dex refuses both); keep one")
	case c.secret != "":
		secretValue, hasSecret = c.secret, true
	case c.secretEnv != "":
		hasSecret = true
		if v, looked := im.lookup(at("secretEnv"), f("secretEnv"), c.secretEnv); looked {
			secretValue = v
		}
	case !c.public:
		im.fail(n, f("secret"), "Required: a confidential client needs a secret (or secretEnv); Dex refuses it without one. Add it, or set public: true")
	}

	if len(c.name) > maxDisplayName {
		im.fail(at("name"), f("name"), "at most %d characters (spec.displayName); shorten it", maxDisplayName)
	}
	if c.logoURL != "" && (len(c.logoURL) > maxLogoURL || !checkURL(c.logoURL)) {
		im.fail(at("logoURL"), f("logoURL"), "must be an absolute http(s) URL of at most %d characters (spec.logoUrl)", maxLogoURL)
	}
	peers, peerNodes := im.dedupe(c.trustedPeers, c.peerNodes, f("trustedPeers"))
	if len(peers) > maxTrustedPeers {
		im.fail(at("trustedPeers"), f("trustedPeers"), "%d peers; at most %d are allowed (spec.trustedPeers)", len(peers), maxTrustedPeers)
	}
	for i, p := range peers {
		if len(p) > maxClientID {
			im.fail(peerNodes[i], fmt.Sprintf("%s[%d]", f("trustedPeers"), i), "at most %d characters", maxClientID)
		}
	}
	uris, uriNodes := im.dedupe(c.redirectURIs, c.redirectNodes, f("redirectURIs"))
	loop, kept := foldLoopback(uris)
	if len(im.errs) > errsBefore {
		return
	}

	name := im.names.take(id, "client")
	obj := &dexv1.DexStaticClient{
		TypeMeta:   metav1.TypeMeta{APIVersion: dexv1.GroupVersion.String(), Kind: "DexStaticClient"},
		ObjectMeta: im.meta(name),
		Spec: dexv1.DexStaticClientSpec{
			ProviderRef:      im.opts.Provider,
			ClientID:         id,
			DisplayName:      c.name,
			Public:           c.public,
			LoopbackRedirect: loop,
			TrustedPeers:     peers,
			LogoURL:          c.logoURL,
		},
	}
	keptNodes := make([]*yaml.Node, len(kept))
	for i, k := range kept {
		obj.Spec.RedirectURIs = append(obj.Spec.RedirectURIs, uris[k])
		keptNodes[i] = uriNodes[k]
	}
	entry := Entry{Field: field, Line: n.Line, ID: id, Client: obj}
	if hasSecret {
		entry.Secret = im.secret(name, map[string]string{ClientSecretKey: secretValue})
		obj.Spec.SecretRef = &dexv1.SecretKeyRef{Name: entry.Secret.Name, Key: ClientSecretKey}
		switch {
		case c.secret != "":
			im.warn(at("secret"), f("secret"), "the client secret moved to Secret %s, key %s (spec.secretRef)", entry.Secret.Name, ClientSecretKey)
		case im.opts.LookupEnv != nil:
			im.warn(at("secretEnv"), f("secretEnv"), "the client secret was read from $%s in this environment into Secret %s, key %s (spec.secretRef)", c.secretEnv, entry.Secret.Name, ClientSecretKey)
		default:
			im.warn(at("secretEnv"), f("secretEnv"), "Dex reads the client secret from $%s: Secret %s, key %s, is left EMPTY; fill it in before applying (or run the import with --expand-env where %s is set)", c.secretEnv, entry.Secret.Name, ClientSecretKey, c.secretEnv)
		}
	}

	// The single-object rules of admission (the redirect URIs' schemes and bounds, reserved ids).
	warns, errs := webhooks.ValidateDexStaticClient(obj)
	for _, w := range warns {
		im.warn(n, field, "%s", w)
	}
	for _, e := range errs {
		node, src := n, field
		switch {
		case strings.HasPrefix(e.Field, "spec.redirectURIs["):
			if i, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(e.Field, "spec.redirectURIs["), "]")); err == nil && i < len(kept) {
				node, src = keptNodes[i], fmt.Sprintf("%s[%d]", f("redirectURIs"), indexOf(c.redirectNodes, keptNodes[i]))
			}
		case strings.HasPrefix(e.Field, "spec.redirectURIs"), strings.HasPrefix(e.Field, "spec.loopbackRedirect"):
			node, src = at("redirectURIs"), f("redirectURIs")
		case e.Field == "spec.clientId":
			node, src = at("id"), f("id")
		}
		im.fail(node, src, "%s (Dexterity refuses %s: %s)", e.Detail, e.Field, e.Type)
	}
	if len(errs) == 0 {
		im.res.Entries = append(im.res.Entries, entry)
	}
}

// readClient reads the fields of a static client; unknown fields are warned about (Dex ignores
// them too).
func (im *importer) readClient(field string, n *yaml.Node) (*staticClient, bool) {
	ps, ok := im.pairs(n, field)
	if !ok {
		return nil, false
	}
	c := &staticClient{at: map[string]*yaml.Node{}}
	good := true
	for _, p := range ps {
		f := join(field, p.key)
		var known string
		for _, name := range []string{"id", "idEnv", "secret", "secretEnv", "redirectURIs", "trustedPeers", "public", "name", "logoURL"} {
			if strings.EqualFold(p.key, name) {
				known = name
			}
		}
		if known == "" {
			im.warn(p.keyAt, f, "not a field of a Dex static client (Dex ignores it); not imported")
			continue
		}
		if c.at[known] != nil {
			im.fail(p.keyAt, f, "%s is given twice (keys match without case, as in Dex); keep one", known)
			good = false
			continue
		}
		c.at[known] = p.value
		var ok bool
		switch known {
		case "id":
			c.id, ok = im.str(p.value, f)
		case "idEnv":
			c.idEnv, ok = im.str(p.value, f)
		case "secret":
			c.secret, ok = im.str(p.value, f)
		case "secretEnv":
			c.secretEnv, ok = im.str(p.value, f)
		case "name":
			c.name, ok = im.str(p.value, f)
		case "logoURL":
			c.logoURL, ok = im.str(p.value, f)
		case "public":
			c.public, ok = im.boolean(p.value, f)
		case "redirectURIs":
			c.redirectURIs, c.redirectNodes, ok = im.strings(p.value, f)
		case "trustedPeers":
			c.trustedPeers, c.peerNodes, ok = im.strings(p.value, f)
		}
		good = good && ok
	}
	return c, good
}

func indexOf(nodes []*yaml.Node, n *yaml.Node) int {
	for i, m := range nodes {
		if m == n {
			return i
		}
	}
	return 0
}

// shorten quotes at most 64 bytes of a value in a message.
func shorten(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
