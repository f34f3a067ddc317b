package dexdeploy

import (
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

func dexObject(storage *dexv1.DexStorage) *dexv1.Dex {
	return &dexv1.Dex{
		ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: "platform"},
		Spec:       dexv1.DexSpec{Issuer: "https://dex.example.com/dex", Storage: storage},
	}
}

func renderedConfig(t *testing.T, d *dexv1.Dex) (map[string]any, []corev1.EnvVar) {
	t.Helper()
	b, env, err := Config(d, false)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m, env
}

func TestConfigPerStorage(t *testing.T) {
	for _, c := range []struct {
		storage   *dexv1.DexStorage
		wantType  string
		wantInCfg string
		wantEnv   string
		wantMount string
	}{
		{nil, "kubernetes", `"crdHandling":"check"`, "", ""},
		{&dexv1.DexStorage{Type: dexv1.DexStorageSQLite3}, "sqlite3", `"file":"/var/lib/dex/dex.db"`, "", SQLiteDir},
		{&dexv1.DexStorage{Type: dexv1.DexStorageMemory}, "memory", "", "", ""},
		{&dexv1.DexStorage{Type: dexv1.DexStoragePostgres, Postgres: &dexv1.DexPostgresStorage{
			Host: "db", Database: "dex", User: "dex", PasswordSecretRef: dexv1.SecretKeyRef{Name: "pg", Key: "password"},
		}}, "postgres", `"password":"$DEX_POSTGRES_PASSWORD"`, envPostgresPassword, ""},
	} {
		t.Run(c.wantType, func(t *testing.T) {
			d := dexObject(c.storage)
			m, env := renderedConfig(t, d)
			st := m["storage"].(map[string]any)
			if st["type"] != c.wantType {
				t.Fatalf("storage type %v, want %s", st["type"], c.wantType)
			}
			cfg, _ := json.Marshal(st["config"])
			if c.wantInCfg != "" && !strings.Contains(string(cfg), c.wantInCfg) {
				t.Errorf("storage config %s lacks %s", cfg, c.wantInCfg)
			}
			if c.wantEnv != "" && (len(env) != 1 || env[0].Name != c.wantEnv || env[0].ValueFrom.SecretKeyRef.Name != "pg") {
				t.Errorf("env %+v, want %s from Secret pg", env, c.wantEnv)
			}
			dep := Deployment(d, env, "h")
			var mounts []string
			for _, vm := range dep.Spec.Template.Spec.Containers[0].VolumeMounts {
				mounts = append(mounts, vm.MountPath)
			}
			if c.wantMount != "" && !strings.Contains(strings.Join(mounts, " "), c.wantMount) {
				t.Errorf("mounts %v lack %s", mounts, c.wantMount)
			}
			if got := *dep.Spec.Template.Spec.AutomountServiceAccountToken; got != (c.wantType == "kubernetes") {
				t.Errorf("service account token mounted: %v (only the kubernetes storage needs it)", got)
			}
			if c.wantType == "sqlite3" && dep.Spec.Strategy.Type != "Recreate" {
				t.Errorf("sqlite3 rolls out with %s, want Recreate (one pod owns the volume)", dep.Spec.Strategy.Type)
			}
		})
	}
}

func TestConfigHoldsNoSecretValue(t *testing.T) {
	d := dexObject(nil)
	d.Spec.EnablePasswordDB = true
	d.Spec.StaticPasswords = []dexv1.DexStaticPassword{{Email: "a@example.com", Username: "a", UserID: "1", HashSecretRef: dexv1.SecretKeyRef{Name: "users", Key: "a"}}}
	m, env := renderedConfig(t, d)
	pw := m["staticPasswords"].([]any)[0].(map[string]any)
	if pw["hashFromEnv"] != envStaticHashPrefix+"0" || pw["hash"] != nil {
		t.Errorf("static password %v, want only hashFromEnv", pw)
	}
	if len(env) != 1 || env[0].ValueFrom.SecretKeyRef.Key != "a" {
		t.Errorf("env %+v", env)
	}
	if refs := SecretRefs(d); len(refs) != 1 || refs[0].Field != "spec.staticPasswords[0].hashSecretRef" {
		t.Errorf("SecretRefs %+v", refs)
	}
}

func TestDiscoveryURL(t *testing.T) {
	for issuer, want := range map[string]string{
		"https://dex.example.com/dex":             "http://dex.platform.svc:5556/dex",
		"http://dex.platform.svc:5556/dex":        "",
		"http://dex.platform.svc.cluster.local/x": "",
		"http://127.0.0.1:5556/dex":               "http://dex.platform.svc:5556/dex",
	} {
		d := dexObject(nil)
		d.Spec.Issuer = issuer
		if got := DiscoveryURL(d); got != want {
			t.Errorf("DiscoveryURL(%s) = %q, want %q", issuer, got, want)
		}
	}
}

func TestBootstrapConnector(t *testing.T) {
	d := dexObject(nil)
	m, _ := renderedConfig(t, d)
	if m["enablePasswordDB"] != nil {
		t.Fatalf("password DB on without being asked: %v", m["enablePasswordDB"])
	}
	b, _, err := Config(d, true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"enablePasswordDB": true`) {
		t.Fatalf("bootstrap connector missing:\n%s", b)
	}
}
