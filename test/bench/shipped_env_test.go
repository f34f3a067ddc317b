package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// shippedEnv is the Go runtime's environment the shipped Deployment (config/manager) gives the
// manager: the literal values (GOGC) and GOMEMLIMIT from the container's memory limit, so that
// the memory benchmarks measure the manager as shipped.
func shippedEnv() ([]string, error) {
	_, file, _, _ := runtime.Caller(0)
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "config", "manager", "manager.yaml"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, doc := range splitYAML(raw) {
		var dep appsv1.Deployment
		if err := yaml.Unmarshal(doc, &dep); err != nil || dep.Kind != "Deployment" {
			continue
		}
		for _, c := range dep.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				switch {
				case e.Name != "GOGC" && e.Name != "GOMEMLIMIT":
				case e.Value != "":
					out = append(out, e.Name+"="+e.Value)
				case e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory":
					limit := c.Resources.Limits[corev1.ResourceMemory]
					out = append(out, fmt.Sprintf("%s=%d", e.Name, limit.Value()))
				}
			}
		}
	}
	return out, nil
}

// splitYAML splits a multi-document YAML file.
func splitYAML(raw []byte) [][]byte {
	var docs [][]byte
	start := 0
	for i := 0; i+4 <= len(raw); i++ {
		if (i == 0 || raw[i-1] == '\n') && string(raw[i:i+3]) == "---" && (i+3 == len(raw) || raw[i+3] == '\n') {
			docs = append(docs, raw[start:i])
			start = i + 3
		}
	}
	return append(docs, raw[start:])
}
