// Security in the chart: the public API, the internal API and the probes on
// separate ports and Services; TLS flags pointing at the Secrets' mounted
// files (tokens for the coordinator only), or --insecure on every process
// when asked; NetworkPolicies that admit only the release's own pods to the
// internal ports.
package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeValues(t *testing.T, text string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// mountedFiles maps each file a pod's Secret volumes put on disk to its Secret:
// "/etc/tessera/cluster-tls/tls.crt" -> "tessera-cluster-tls".
func mountedFiles(t *testing.T, pod interface{}) map[string]string {
	t.Helper()
	secrets := map[string]object{}
	volumes, _ := get(pod, "spec", "volumes").([]interface{})
	for _, v := range volumes {
		if secret, ok := get(v, "secret").(object); ok {
			secrets[get(v, "name").(string)] = secret
		}
	}
	files := map[string]string{}
	mounts, _ := onlyContainer(t, pod)["volumeMounts"].([]interface{})
	for _, m := range mounts {
		secret, ok := secrets[fmt.Sprint(get(m, "name"))]
		if !ok {
			continue
		}
		if get(m, "subPath") != nil {
			t.Errorf("Secret mount %v uses subPath: rotated tokens would never arrive", m)
		}
		items, _ := secret["items"].([]interface{})
		for _, item := range items {
			files[fmt.Sprintf("%v/%v", get(m, "mountPath"), get(item, "path"))] = fmt.Sprint(secret["secretName"])
		}
	}
	return files
}

// wantMountedFlag checks that flag names a file mounted from secret.
func wantMountedFlag(t *testing.T, role string, args []string, files map[string]string, flag, secret string) {
	t.Helper()
	path, ok := flagValue(args, flag)
	if !ok {
		t.Errorf("%s: %s missing in %v", role, flag, args)
		return
	}
	if files[path] != secret {
		t.Errorf("%s: %s %s is not a file of Secret %s (mounted: %v)", role, flag, path, secret, files)
	}
}

func TestTlsByDefault(t *testing.T) {
	objects := render(t)
	coordinatorPod := get(find(t, objects, "Deployment", "tessera-coordinator"), "spec", "template")
	workerPod := get(find(t, objects, "StatefulSet", "tessera-worker"), "spec", "template")
	for role, pod := range map[string]interface{}{"coordinator": coordinatorPod, "worker": workerPod} {
		args := stringList(onlyContainer(t, pod)["args"])
		files := mountedFiles(t, pod)
		if _, insecure := flagValue(append(args, ""), "--insecure"); insecure {
			t.Errorf("%s: --insecure by default", role)
		}
		wantMountedFlag(t, role, args, files, "--tls-cert", "tessera-cluster-tls")
		wantMountedFlag(t, role, args, files, "--tls-key", "tessera-cluster-tls")
		wantMountedFlag(t, role, args, files, "--tls-ca", "tessera-cluster-tls")
		wantFlag(t, args, "--tls-server-name", "tessera-internal")
		_, tokens := flagValue(args, "--auth-tokens-file")
		if role == "coordinator" {
			wantMountedFlag(t, role, args, files, "--auth-tokens-file", "tessera-api-tokens")
		} else if tokens {
			t.Errorf("worker: --auth-tokens-file: workers serve no public API")
		}
		for path, secret := range files {
			if role == "worker" && secret == "tessera-api-tokens" {
				t.Errorf("worker mounts the API tokens at %s", path)
			}
		}
	}
	if _, ok := flagValue(stringList(onlyContainer(t, coordinatorPod)["args"]), "--public-tls-cert"); ok {
		t.Errorf("--public-tls-cert without security.publicTls.existingSecret")
	}
}

func TestPublicCertificateOfItsOwn(t *testing.T) {
	objects := render(t, "--set", "security.publicTls.existingSecret=tessera-public-tls,security.authTokens.key=api")
	pod := get(find(t, objects, "Deployment", "tessera-coordinator"), "spec", "template")
	args := stringList(onlyContainer(t, pod)["args"])
	files := mountedFiles(t, pod)
	wantMountedFlag(t, "coordinator", args, files, "--public-tls-cert", "tessera-public-tls")
	wantMountedFlag(t, "coordinator", args, files, "--public-tls-key", "tessera-public-tls")
	wantMountedFlag(t, "coordinator", args, files, "--tls-cert", "tessera-cluster-tls")
	wantFlag(t, args, "--auth-tokens-file", "/etc/tessera/auth/api")
	wantMountedFlag(t, "coordinator", args, files, "--auth-tokens-file", "tessera-api-tokens")
}

func TestInsecureOnlyWhenAsked(t *testing.T) {
	for _, kind := range []string{"StatefulSet", "LeaderWorkerSet"} {
		objects := render(t, "--set", "security.tls=false,security.clusterTls.existingSecret=,security.authTokens.existingSecret=",
			"--set", "workers.kind="+kind)
		pods := []interface{}{get(find(t, objects, "Deployment", "tessera-coordinator"), "spec", "template")}
		if kind == "StatefulSet" {
			pods = append(pods, get(find(t, objects, "StatefulSet", "tessera-worker"), "spec", "template"))
		} else {
			pods = append(pods, get(find(t, objects, "LeaderWorkerSet", "tessera-worker"), "spec", "leaderWorkerTemplate",
				"workerTemplate"))
		}
		for _, pod := range pods {
			args := stringList(onlyContainer(t, pod)["args"])
			if !strings.Contains(strings.Join(args, " "), "--insecure") {
				t.Errorf("%s: security.tls=false must pass --insecure: %v", kind, args)
			}
			for _, flag := range []string{"--tls-cert", "--tls-key", "--tls-ca", "--auth-tokens-file"} {
				if _, ok := flagValue(args, flag); ok {
					t.Errorf("%s: %s with security.tls=false", kind, flag)
				}
			}
			if files := mountedFiles(t, pod); len(files) != 0 {
				t.Errorf("%s: Secrets mounted with security.tls=false: %v", kind, files)
			}
		}
	}
}

func TestPublicAndInternalServicesApart(t *testing.T) {
	objects := render(t, "--set", "coordinator.service.type=LoadBalancer")
	public := find(t, objects, "Service", "tessera-coordinator")
	ports, _ := get(public, "spec", "ports").([]interface{})
	if len(ports) != 2 || portNamed(public, "grpc") == nil || number(portNamed(public, "grpc")["port"]) != 50051 ||
		portNamed(public, "http") == nil || number(portNamed(public, "http")["port"]) != 8000 {
		t.Errorf("the public Service must expose the public ports (grpc, http) alone, got %v", ports)
	}
	internal := find(t, objects, "Service", "tessera-coordinator-internal")
	if get(internal, "spec", "type") != "ClusterIP" {
		t.Errorf("the internal Service must stay ClusterIP, got %v", get(internal, "spec", "type"))
	}
	if p := portNamed(internal, "internal"); p == nil || number(p["port"]) != 50052 || p["targetPort"] != "internal" {
		t.Errorf("internal Service: want port internal 50052 -> internal, got %v", p)
	}
	if !isSubset(get(internal, "spec", "selector"), get(find(t, objects, "Deployment", "tessera-coordinator"),
		"spec", "template", "metadata", "labels")) {
		t.Errorf("the internal Service does not select the coordinator")
	}
	c := onlyContainer(t, get(find(t, objects, "Deployment", "tessera-coordinator"), "spec", "template"))
	named := map[string]float64{}
	for _, p := range c["ports"].([]interface{}) {
		named[fmt.Sprint(get(p, "name"))] = number(get(p, "containerPort"))
	}
	if named["grpc"] != 50051 || named["internal"] != 50052 || named["health"] != 50053 || named["metrics"] != 9090 {
		t.Errorf("coordinator container ports: %v", named)
	}
	worker := find(t, objects, "Service", "tessera-worker")
	if get(worker, "spec", "clusterIP") != "None" {
		t.Errorf("the workers' Service must be headless (internal)")
	}
}

// ingressRules of a NetworkPolicy: each rule's ports and its peers' pod components
// ("*" for a rule open to anyone, "peer" for a peer other than a pod selector).
type ingressRule struct {
	ports []float64
	from  []string
}

func ingressRules(policy object) []ingressRule {
	var rules []ingressRule
	list, _ := get(policy, "spec", "ingress").([]interface{})
	for _, r := range list {
		var rule ingressRule
		ports, _ := get(r, "ports").([]interface{})
		for _, p := range ports {
			rule.ports = append(rule.ports, number(get(p, "port")))
		}
		peers, _ := get(r, "from").([]interface{})
		if len(peers) == 0 {
			rule.from = []string{"*"}
		}
		for _, peer := range peers {
			component, ok := get(peer, "podSelector", "matchLabels", "app.kubernetes.io/component").(string)
			instance := get(peer, "podSelector", "matchLabels", "app.kubernetes.io/instance")
			if !ok || instance != "tessera" {
				component = "peer"
			}
			rule.from = append(rule.from, component)
		}
		rules = append(rules, rule)
	}
	return rules
}

// admitted lists who may reach port: pod components, "*" or "peer".
func admitted(rules []ingressRule, port float64) []string {
	var who []string
	for _, rule := range rules {
		match := len(rule.ports) == 0
		for _, p := range rule.ports {
			match = match || p == port
		}
		if match {
			who = append(who, rule.from...)
		}
	}
	return who
}

func TestNetworkPolicies(t *testing.T) {
	objects := render(t)
	coordinator := find(t, objects, "NetworkPolicy", "tessera-coordinator")
	worker := find(t, objects, "NetworkPolicy", "tessera-worker")
	if !isSubset(get(coordinator, "spec", "podSelector", "matchLabels"), get(find(t, objects, "Deployment",
		"tessera-coordinator"), "spec", "template", "metadata", "labels")) {
		t.Errorf("the coordinator's NetworkPolicy does not select the coordinator pod")
	}
	if !isSubset(get(worker, "spec", "podSelector", "matchLabels"), get(find(t, objects, "StatefulSet",
		"tessera-worker"), "spec", "template", "metadata", "labels")) {
		t.Errorf("the workers' NetworkPolicy does not select the worker pods")
	}
	rules := ingressRules(coordinator)
	for port, want := range map[float64]string{50051: "*", 8000: "*", 50052: "worker", 50053: "*", 9090: "*"} {
		if got := strings.Join(admitted(rules, port), ","); got != want {
			t.Errorf("coordinator port %v: want admitted %q, got %q", port, want, got)
		}
	}
	rules = ingressRules(worker)
	for port, want := range map[float64]string{50061: "coordinator,worker", 40000: "coordinator,worker",
		50062: "coordinator,worker,*", 9091: "coordinator,worker,*"} {
		if got := strings.Join(admitted(rules, port), ","); got != want {
			t.Errorf("worker port %v (40000: an NCCL port): want admitted %q, got %q", port, want, got)
		}
	}

	file := writeValues(t, "networkPolicy:\n  publicFrom:\n    - namespaceSelector:\n        matchLabels: {team: apps}\n")
	rules = ingressRules(find(t, render(t, "-f", file), "NetworkPolicy", "tessera-coordinator"))
	for _, port := range []float64{50051, 8000} {
		if got := strings.Join(admitted(rules, port), ","); got != "peer" {
			t.Errorf("networkPolicy.publicFrom must restrict the public port %v, admitted %q", port, got)
		}
	}
	if policies := ofKind(render(t, "--set", "networkPolicy.enabled=false"), "NetworkPolicy"); len(policies) != 0 {
		t.Errorf("networkPolicy.enabled=false still renders %d policies", len(policies))
	}
}
