// Package kubernetes holds xdpcache's Kubernetes manifests; its test decodes
// them strictly with the Kubernetes API types and checks their promises.
package kubernetes

import (
	"bytes"
	"os"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

func decode(t *testing.T) (*corev1.ConfigMap, *appsv1.DaemonSet) {
	t.Helper()
	data, err := os.ReadFile("xdpcache.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm *corev1.ConfigMap
	var ds *appsv1.DaemonSet
	for _, doc := range bytes.Split(data, []byte("\n---\n")) {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		switch meta.Kind {
		case "ConfigMap":
			cm = &corev1.ConfigMap{}
			if err := yaml.UnmarshalStrict(doc, cm); err != nil {
				t.Fatalf("ConfigMap: %v", err)
			}
		case "DaemonSet":
			ds = &appsv1.DaemonSet{}
			if err := yaml.UnmarshalStrict(doc, ds); err != nil {
				t.Fatalf("DaemonSet: %v", err)
			}
		default:
			t.Fatalf("unexpected kind %q", meta.Kind)
		}
	}
	if cm == nil || ds == nil {
		t.Fatal("want a ConfigMap and a DaemonSet")
	}
	return cm, ds
}

func TestDaemonSet(t *testing.T) {
	cm, ds := decode(t)
	spec := ds.Spec.Template.Spec
	if !spec.HostNetwork {
		t.Error("hostNetwork must be true: XDP attaches to the node's interface")
	}
	if spec.NodeSelector["xdpcache.io/memcached"] != "true" {
		t.Errorf("nodeSelector: %v", spec.NodeSelector)
	}
	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType ||
		ds.Spec.UpdateStrategy.RollingUpdate == nil || ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable.IntValue() != 1 {
		t.Errorf("update strategy: %+v", ds.Spec.UpdateStrategy)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers", len(spec.Containers))
	}
	c := spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.Privileged != nil && *sc.Privileged || sc.Capabilities == nil {
		t.Fatalf("the pod must not be privileged and must list capabilities: %+v", sc)
	}
	for _, cap := range []corev1.Capability{"BPF", "NET_ADMIN", "PERFMON"} {
		if !slices.Contains(sc.Capabilities.Add, cap) {
			t.Errorf("capability %s missing", cap)
		}
	}
	if slices.Contains(sc.Capabilities.Add, "SYS_ADMIN") || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("capabilities: add %v drop %v", sc.Capabilities.Add, sc.Capabilities.Drop)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	hostPaths := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	if m, ok := mounts["/sys/fs/bpf"]; !ok || hostPaths[m.Name] != "/sys/fs/bpf" {
		t.Error("/sys/fs/bpf must come from the host: the pins outlive the pod")
	}
	if m, ok := mounts["/sys"]; !ok || hostPaths[m.Name] != "/sys" || !m.ReadOnly {
		t.Error("/sys must be mounted read-only from the host")
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/metrics" {
		t.Errorf("readiness must come from the metrics endpoint: %+v", c.ReadinessProbe)
	}
	if !slices.Contains(c.Args, "run") || !slices.Contains(c.Args, "--metrics-addr") {
		t.Errorf("args %v", c.Args)
	}
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].ConfigMapRef == nil || c.EnvFrom[0].ConfigMapRef.Name != cm.Name {
		t.Errorf("settings must come from the ConfigMap %q: %+v", cm.Name, c.EnvFrom)
	}
	for _, k := range []string{"XDPCACHE_IFACE", "XDPCACHE_MODE"} {
		if cm.Data[k] == "" {
			t.Errorf("ConfigMap lacks %s", k)
		}
	}
}
