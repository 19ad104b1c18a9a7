// The chart as a whole: what the default install contains, the coordinator,
// model volume choices, optional monitoring objects, NOTES and the
// renderer's own output modes.
package deploy_test

import (
	"fmt"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaultValues(t *testing.T) {
	objects := render(t)
	want := []string{"Deployment/tessera-coordinator", "Service/tessera-coordinator-internal",
		"Service/tessera-coordinator", "NetworkPolicy/tessera-coordinator", "NetworkPolicy/tessera-worker",
		"Service/tessera-worker", "StatefulSet/tessera-worker"}
	if got := summary(objects); got != strings.Join(want, ", ") {
		t.Errorf("default objects:\n got %s\nwant %s", got, strings.Join(want, ", "))
	}
	set := find(t, objects, "StatefulSet", "tessera-worker")
	if number(get(set, "spec", "replicas")) != 2 {
		t.Errorf("default workers.replicas: want 2, got %v", get(set, "spec", "replicas"))
	}
	if image := onlyContainer(t, get(set, "spec", "template"))["image"]; image != "tessera:0.1.0" {
		t.Errorf("image: want tessera:0.1.0 (tag defaults to appVersion), got %v", image)
	}
}

func TestCoordinator(t *testing.T) {
	objects := render(t, "--set", "coordinator.args.minShardTokens=2048,coordinator.args.maxNewTokensLimit=512")
	deployment := find(t, objects, "Deployment", "tessera-coordinator")
	if number(get(deployment, "spec", "replicas")) != 1 || get(deployment, "spec", "strategy", "type") != "Recreate" {
		t.Errorf("coordinator: want 1 replica with the Recreate strategy, got %v", deployment["spec"])
	}
	c := onlyContainer(t, get(deployment, "spec", "template"))
	args := stringList(c["args"])
	if args[0] != "coordinator" {
		t.Errorf("args must start with the coordinator subcommand: %v", args)
	}
	wantFlag(t, args, "--listen", "0.0.0.0:50051")
	wantFlag(t, args, "--model", "/models/model")
	wantFlag(t, args, "--min-shard-tokens", "2048")
	wantFlag(t, args, "--max-new-tokens-limit", "512")
	workers := find(t, objects, "StatefulSet", "tessera-worker")
	wantFlag(t, stringList(onlyContainer(t, get(workers, "spec", "template"))["args"]), "--max-new-tokens-limit", "512")
	wantFlag(t, args, "--metrics-port", "9090")
	wantFlag(t, args, "--internal-listen", "0.0.0.0:50052")
	wantFlag(t, args, "--health-port", "50053")
	checkGrpcProbes(t, c, 50053)
	service := find(t, objects, "Service", "tessera-coordinator")
	if p := portNamed(service, "grpc"); p == nil || number(p["port"]) != 50051 {
		t.Errorf("coordinator Service: want port grpc 50051, got %v", p)
	}
	internal := find(t, objects, "Service", "tessera-coordinator-internal")
	if p := portNamed(internal, "metrics"); p == nil || number(p["port"]) != 9090 {
		t.Errorf("coordinator internal Service: want port metrics 9090, got %v", p)
	}
	if !isSubset(get(service, "spec", "selector"), get(deployment, "spec", "template", "metadata", "labels")) {
		t.Errorf("coordinator Service selector does not match the coordinator pod")
	}
	if isSubset(get(service, "spec", "selector"), get(find(t, objects, "StatefulSet", "tessera-worker"),
		"spec", "template", "metadata", "labels")) {
		t.Errorf("coordinator Service selector also matches worker pods")
	}
}

// The OpenAI-compatible HTTP API: on by default on port 8000 of the public
// Service with the queue and max_new_tokens flags; off: no flag, no port.
func TestCoordinatorHttpApi(t *testing.T) {
	objects := render(t, "--set", "coordinator.http.servedModelName=granite,coordinator.args.maxQueuedRequests=8")
	c := onlyContainer(t, get(find(t, objects, "Deployment", "tessera-coordinator"), "spec", "template"))
	args := stringList(c["args"])
	wantFlag(t, args, "--http-listen", "0.0.0.0:8000")
	wantFlag(t, args, "--served-model-name", "granite")
	wantFlag(t, args, "--default-max-new-tokens", "1024")
	wantFlag(t, args, "--max-queued-requests", "8")
	wantFlag(t, args, "--queue-timeout-ms", "60000")
	service := find(t, objects, "Service", "tessera-coordinator")
	if p := portNamed(service, "http"); p == nil || number(p["port"]) != 8000 || p["targetPort"] != "http" ||
		p["appProtocol"] != "https" {
		t.Errorf("coordinator Service: want port http 8000 -> http (https), got %v", p)
	}
	named := map[string]float64{}
	for _, p := range c["ports"].([]interface{}) {
		named[fmt.Sprint(get(p, "name"))] = number(get(p, "containerPort"))
	}
	if named["http"] != 8000 {
		t.Errorf("coordinator container ports: want http 8000, got %v", named)
	}

	off := render(t, "--set", "coordinator.http.enabled=false")
	offArgs := stringList(onlyContainer(t, get(find(t, off, "Deployment", "tessera-coordinator"), "spec",
		"template"))["args"])
	if _, ok := flagValue(offArgs, "--http-listen"); ok {
		t.Errorf("coordinator.http.enabled=false still passes --http-listen: %v", offArgs)
	}
	if p := portNamed(find(t, off, "Service", "tessera-coordinator"), "http"); p != nil {
		t.Errorf("coordinator.http.enabled=false still exposes %v", p)
	}
	insecure := render(t, "--set", "security.tls=false")
	if p := portNamed(find(t, insecure, "Service", "tessera-coordinator"), "http"); p == nil || p["appProtocol"] != "http" {
		t.Errorf("security.tls=false: want appProtocol http, got %v", p)
	}
}

// modelVolume returns the pod's volume named "model" and the container's mount of it.
func modelVolume(t *testing.T, pod interface{}) (object, object) {
	t.Helper()
	var volume, mount object
	volumes, _ := get(pod, "spec", "volumes").([]interface{})
	for _, v := range volumes {
		if v.(object)["name"] == "model" {
			volume = v.(object)
		}
	}
	mounts, _ := onlyContainer(t, pod)["volumeMounts"].([]interface{})
	for _, m := range mounts {
		if m.(object)["name"] == "model" {
			mount = m.(object)
		}
	}
	return volume, mount
}

func TestModelSources(t *testing.T) {
	pods := func(objects []object) []interface{} {
		return []interface{}{
			get(find(t, objects, "Deployment", "tessera-coordinator"), "spec", "template"),
			get(find(t, objects, "StatefulSet", "tessera-worker"), "spec", "template"),
		}
	}
	for _, pod := range pods(render(t, "--set", "model.pvc.existingClaim=weights")) {
		volume, mount := modelVolume(t, pod)
		if get(volume, "persistentVolumeClaim", "claimName") != "weights" || mount["mountPath"] != "/models" ||
			mount["readOnly"] != true {
			t.Errorf("pvc: want claim weights mounted read-only at /models, got %v %v", volume, mount)
		}
	}

	values := filepath.Join(t.TempDir(), "hostpath.yaml")
	text := "model:\n  source: hostPath\n  mountPath: /weights\n  path: /weights/nemotron-h\n  hostPath:\n    path: /srv/llm\n"
	if err := os.WriteFile(values, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, pod := range pods(render(t, "-f", values)) {
		volume, mount := modelVolume(t, pod)
		if get(volume, "hostPath", "path") != "/srv/llm" || mount["mountPath"] != "/weights" {
			t.Errorf("hostPath: want /srv/llm at /weights, got %v %v", volume, mount)
		}
		wantFlag(t, stringList(onlyContainer(t, pod)["args"]), "--model", "/weights/nemotron-h")
	}

	for _, pod := range pods(render(t, "--set", "model.source=none,model.path=/opt/model")) {
		if volume, mount := modelVolume(t, pod); volume != nil || mount != nil {
			t.Errorf("none: want no model volume, got %v %v", volume, mount)
		}
		wantFlag(t, stringList(onlyContainer(t, pod)["args"]), "--model", "/opt/model")
	}
}

func TestServiceMonitor(t *testing.T) {
	if monitors := ofKind(render(t), "ServiceMonitor"); len(monitors) != 0 {
		t.Errorf("the ServiceMonitor must be off by default")
	}
	for _, kind := range []string{"StatefulSet", "LeaderWorkerSet"} {
		objects := render(t, "--namespace", "inference", "--set", "metrics.serviceMonitor.enabled=true",
			"--set", "metrics.serviceMonitor.labels.release=prom", "--set", "workers.kind="+kind)
		monitor := find(t, objects, "ServiceMonitor", "tessera")
		if monitor["apiVersion"] != "monitoring.coreos.com/v1" {
			t.Errorf("apiVersion: want monitoring.coreos.com/v1, got %v", monitor["apiVersion"])
		}
		if get(monitor, "metadata", "labels", "release") != "prom" {
			t.Errorf("metrics.serviceMonitor.labels must reach the ServiceMonitor")
		}
		if get(monitor, "spec", "endpoints", 0, "port") != "metrics" || get(monitor, "spec", "endpoints", 0, "path") != "/metrics" {
			t.Errorf("endpoint: want port metrics path /metrics, got %v", get(monitor, "spec", "endpoints"))
		}
		if get(monitor, "spec", "namespaceSelector", "matchNames", 0) != "inference" {
			t.Errorf("namespaceSelector: want the release namespace, got %v", get(monitor, "spec", "namespaceSelector"))
		}
		selector := get(monitor, "spec", "selector", "matchLabels")
		scraped := map[string]float64{}
		for _, service := range ofKind(objects, "Service") {
			if isSubset(selector, get(service, "metadata", "labels")) {
				if port := portNamed(service, "metrics"); port != nil {
					scraped[get(service, "spec", "selector", "app.kubernetes.io/component").(string)] = number(port["port"])
				}
			}
		}
		if scraped["coordinator"] != 9090 || scraped["worker"] != 9091 {
			t.Errorf("%s: the ServiceMonitor must reach coordinator :9090 and workers :9091, reaches %v", kind, scraped)
		}
	}
}

func TestDashboardConfigMap(t *testing.T) {
	if maps := ofKind(render(t), "ConfigMap"); len(maps) != 0 {
		t.Errorf("the dashboard ConfigMap must be off by default")
	}
	objects := render(t, "--set", "metrics.dashboard.enabled=true")
	configMap := find(t, objects, "ConfigMap", "tessera-dashboard")
	if get(configMap, "metadata", "labels", "grafana_dashboard") != "1" {
		t.Errorf("the ConfigMap needs the grafana_dashboard label for Grafana's sidecar")
	}
	text, _ := get(configMap, "data", "tessera-dashboard.json").(string)
	var dashboard object
	if err := json.Unmarshal([]byte(text), &dashboard); err != nil {
		t.Fatalf("data[tessera-dashboard.json] is not JSON: %v", err)
	}
	for _, name := range contractMetrics {
		if !strings.Contains(text, name) {
			t.Errorf("the dashboard in the ConfigMap does not use %s", name)
		}
	}
	chartCopy, err := os.ReadFile(filepath.Join(chartDir(t), "dashboards", "tessera-dashboard.json"))
	if err != nil || strings.TrimSpace(string(chartCopy)) != strings.TrimSpace(text) {
		t.Errorf("the ConfigMap must carry the chart's dashboards/tessera-dashboard.json unchanged (%v)", err)
	}
}

// Every object of the fullest configuration is identified and labelled
// (render checks it for each object) and none is rendered twice.
func TestEveryObjectIdentified(t *testing.T) {
	for _, kind := range []string{"StatefulSet", "LeaderWorkerSet"} {
		objects := render(t, "--set", "metrics.serviceMonitor.enabled=true,metrics.dashboard.enabled=true",
			"--set", "workers.kind="+kind)
		seen := map[string]bool{}
		for _, o := range objects {
			id := o["kind"].(string) + "/" + get(o, "metadata", "name").(string)
			if seen[id] {
				t.Errorf("%s is rendered twice", id)
			}
			seen[id] = true
		}
		if len(objects) != 9 {
			t.Errorf("%s: want 9 objects, got %s", kind, summary(objects))
		}
	}
}

func TestNotes(t *testing.T) {
	notes, stderr, code := runRender(t, "--output", "notes", "--namespace", "llm")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"kubectl -n llm port-forward svc/tessera-coordinator 50051:50051",
		`grpcurl -cacert ca.crt -H "authorization: Bearer $TOKEN" localhost:50051 tessera.v1.Tessera/GetModelInfo`,
		"TOKEN=<a line of the Secret tessera-api-tokens, key tokens>",
		"--tls-ca ca.crt --token-file FILE",
		"kubectl -n llm scale statefulset tessera-worker --replicas N",
		"--set workers.replicas=N",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("NOTES.txt lacks %q:\n%s", want, notes)
		}
	}
	if strings.Contains(notes, "-plaintext") || strings.Contains(notes, "INSECURE") {
		t.Errorf("NOTES.txt of a TLS install suggests plaintext:\n%s", notes)
	}
	notes, _, _ = runRender(t, "--output", "notes", "--set", "security.tls=false")
	for _, want := range []string{"grpcurl -plaintext localhost:50051 tessera.v1.Tessera/GetModelInfo",
		"INSECURE (security.tls=false): no TLS, no authentication"} {
		if !strings.Contains(notes, want) {
			t.Errorf("NOTES.txt of an insecure install lacks %q:\n%s", want, notes)
		}
	}
	notes, _, _ = runRender(t, "--output", "notes", "--set", "workers.kind=LeaderWorkerSet")
	if strings.Contains(notes, "kubectl -n default scale statefulset") || !strings.Contains(notes, "LeaderWorkerSet") {
		t.Errorf("NOTES.txt for a LeaderWorkerSet must not suggest scaling a StatefulSet:\n%s", notes)
	}
}

func TestYamlOutput(t *testing.T) {
	yaml, stderr, code := runRender(t)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if docs := strings.Count(yaml, "---\n# Source: tessera/templates/"); docs != len(render(t)) {
		t.Errorf("YAML output has %d documents, JSON output %d objects", docs, len(render(t)))
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"--output", "xml"}, {"--no-such-flag"}, {"--set", "workers[0].x=1"}} {
		_, stderr, code := runRender(t, args...)
		if code == 0 || stderr == "" {
			t.Errorf("%v: want a non-zero exit with a message, got %d %q", args, code, stderr)
		}
	}
}
