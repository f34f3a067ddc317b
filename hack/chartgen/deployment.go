package main

import (
	"fmt"
	"strings"
)

// deployment substitutes the values of the manager's Deployment and records config/default's
// settings as values.yaml's defaults.
func (g *generator) deployment(t *templ, m map[string]any) error {
	spec := child(m, "spec")
	g.defaults.Replicas = fmt.Sprint(spec["replicas"])
	// Several replicas without leader election would run the controllers on each of them.
	spec["replicas"] = t.scalar(`{{ if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}{{ fail "replicaCount > 1 needs leaderElection.enabled: the controllers would run on every replica" }}{{ end }}{{ .Values.replicaCount }}`)
	tmpl := child(spec, "template")
	tmd := child(tmpl, "metadata")
	child(tmd, "labels")[t.lines(mapEntries(".Values.podLabels"))] = ""
	if _, ok := tmd["annotations"]; ok {
		return fmt.Errorf("the pod template has annotations: chartgen would replace them")
	}
	tmd["annotations"] = t.lines(withBlock("annotations", ".Values.podAnnotations"))
	pod := child(tmpl, "spec")
	for key, value := range map[string]string{
		"imagePullSecrets": ".Values.imagePullSecrets", "nodeSelector": ".Values.nodeSelector",
		"tolerations": ".Values.tolerations", "affinity": ".Values.affinity",
		"topologySpreadConstraints": ".Values.topologySpreadConstraints",
	} {
		if _, ok := pod[key]; ok {
			return fmt.Errorf("the pod spec sets %s: chartgen would replace it", key)
		}
		pod[key] = t.lines(withBlock(key, value))
	}
	pod[t.lines(func(n int) string {
		return fmt.Sprintf("{{- with .Values.priorityClassName }}\n%spriorityClassName: {{ . }}\n{{- end }}", ind(n))
	})] = ""

	containers, _ := pod["containers"].([]any)
	var c map[string]any
	for _, x := range containers {
		if cm, ok := x.(map[string]any); ok && cm["name"] == managerContainer {
			c = cm
		}
	}
	if c == nil {
		return fmt.Errorf("no container %q", managerContainer)
	}
	c["image"] = t.scalar(`"{{ include "dexterity.image" . }}"`)
	if _, ok := c["imagePullPolicy"]; ok {
		return fmt.Errorf("the manager container sets imagePullPolicy: chartgen would replace it")
	}
	c[t.lines(func(n int) string {
		return fmt.Sprintf("{{- with .Values.image.pullPolicy }}\n%simagePullPolicy: {{ . }}\n{{- end }}", ind(n))
	})] = ""
	if err := g.args(t, c); err != nil {
		return err
	}
	env, _ := c["env"].([]any)
	c["env"] = append(env, t.lines(func(n int) string {
		return fmt.Sprintf("{{- with .Values.extraEnv }}\n%s{{- toYaml . | nindent %d }}\n{{- end }}", ind(n), n)
	}))
	for _, p := range c["ports"].([]any) {
		port := p.(map[string]any)
		switch port["name"] {
		case "metrics":
			g.defaults.MetricsPort = fmt.Sprint(port["containerPort"])
			port["containerPort"] = t.scalar("{{ .Values.metrics.port }}")
		case "registry":
			g.defaults.RegistryPort = fmt.Sprint(port["containerPort"])
			port["containerPort"] = t.scalar("{{ .Values.registry.port }}")
		}
	}
	if g.defaults.MetricsPort == "" || g.defaults.RegistryPort == "" {
		return fmt.Errorf("the manager container has no metrics or registry port")
	}
	mounts, _ := c["volumeMounts"].([]any)
	c["volumeMounts"] = append(mounts, t.lines(func(n int) string {
		return fmt.Sprintf("{{- if and .Values.registry.enabled .Values.registry.tls.secretName }}\n%s- name: registry-tls\n%s  mountPath: %s\n%s  readOnly: true\n{{- end }}", ind(n), ind(n), registryTLSDir, ind(n))
	}))
	res, ok := c["resources"].(map[string]any)
	if !ok {
		return fmt.Errorf("the manager container has no resources")
	}
	g.defaults.Resources = res
	c["resources"] = t.lines(func(n int) string {
		return fmt.Sprintf("%sresources:\n%s{{- toYaml .Values.resources | nindent %d }}", ind(n), ind(n+2), n+2)
	})

	volumes, _ := pod["volumes"].([]any)
	found := false
	for i, v := range volumes {
		vol := v.(map[string]any)
		if vol["name"] != webhookCertsVolume {
			continue
		}
		found = true
		original := vol
		volumes[i] = t.lines(func(n int) string {
			self, err := yamlAt(original, n, true)
			if err != nil {
				panic(err)
			}
			return fmt.Sprintf("{{- if .Values.webhook.certManager.enabled }}\n%s- name: %s\n%s  secret:\n%s    secretName: %s\n{{- else }}\n%s\n{{- end }}",
				ind(n), webhookCertsVolume, ind(n), ind(n), certManagerSecret, self)
		})
	}
	if !found {
		return fmt.Errorf("no volume %q", webhookCertsVolume)
	}
	pod["volumes"] = append(volumes, t.lines(func(n int) string {
		return fmt.Sprintf("{{- if and .Values.registry.enabled .Values.registry.tls.secretName }}\n%s- name: registry-tls\n%s  secret:\n%s    secretName: {{ .Values.registry.tls.secretName }}\n{{- end }}", ind(n), ind(n), ind(n))
	}))
	return nil
}

// args substitutes the flags the values set, and appends the conditional ones.
func (g *generator) args(t *templ, c map[string]any) error {
	args, _ := c["args"].([]any)
	seen := map[string]bool{}
	for i, a := range args {
		s, _ := a.(string)
		flag, _, _ := strings.Cut(s, "=")
		seen[flag] = true
		switch flag {
		case "--leader-elect":
			args[i] = t.lines(func(n int) string {
				return fmt.Sprintf("{{- if .Values.leaderElection.enabled }}\n%s- --leader-elect\n{{- end }}", ind(n))
			})
		case "--metrics-bind-address":
			args[i] = t.scalar(`"--metrics-bind-address={{ if .Values.metrics.enabled }}:{{ .Values.metrics.port }}{{ else }}0{{ end }}"`)
		case "--registry-bind-address":
			args[i] = t.scalar(`"--registry-bind-address={{ if .Values.registry.enabled }}:{{ .Values.registry.port }}{{ else }}0{{ end }}"`)
		}
	}
	for _, f := range []string{"--leader-elect", "--metrics-bind-address", "--registry-bind-address", "--enable-webhooks", "--webhook-cert-dir"} {
		if !seen[f] {
			return fmt.Errorf("the manager container has no %s argument", f)
		}
	}
	c["args"] = append(args, t.lines(func(n int) string {
		i := ind(n)
		return "{{- if .Values.webhook.certManager.enabled }}\n" +
			i + "# cert-manager provides the certificate: never self-manage one.\n" +
			i + "- --webhook-cert-secret=\n" +
			"{{- end }}\n" +
			"{{- if and .Values.registry.enabled .Values.registry.tls.secretName }}\n" +
			i + "- --registry-tls-cert-file=" + registryTLSDir + "/tls.crt\n" +
			i + "- --registry-tls-key-file=" + registryTLSDir + "/tls.key\n" +
			"{{- end }}\n" +
			"{{- with .Values.extraArgs }}\n" +
			fmt.Sprintf("%s{{- toYaml . | nindent %d }}\n", i, n) +
			"{{- end }}"
	}))
	return nil
}
