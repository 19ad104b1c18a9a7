// The worker side of the chart: at any worker count the pods must be able to
// find the coordinator and each other (--coordinator at its internal Service,
// --advertise under the headless Service), be probed over gRPC on their
// plaintext health port, get their GPUs,
// /dev/shm and NCCL settings, and be scalable without restarts. The same pod
// template must work as a LeaderWorkerSet.
package deploy_test

import (
	"fmt"
	"strings"
	"testing"
)

const (
	coordinatorAddress = "tessera-coordinator-internal.$(POD_NAMESPACE).svc.cluster.local:50052"
	workerAdvertise    = "$(POD_NAME).tessera-worker.$(POD_NAMESPACE).svc.cluster.local:50061"
)

func TestWorkerReplicas(t *testing.T) {
	for _, n := range []int{1, 4, 16} {
		t.Run(fmt.Sprintf("replicas=%d", n), func(t *testing.T) {
			objects := render(t, "--set", fmt.Sprintf("workers.replicas=%d", n))
			set := find(t, objects, "StatefulSet", "tessera-worker")
			if got := number(get(set, "spec", "replicas")); got != float64(n) {
				t.Errorf("spec.replicas: want %d, got %v", n, got)
			}
			if get(set, "spec", "podManagementPolicy") != "Parallel" {
				t.Errorf("podManagementPolicy: want Parallel (workers load weights concurrently)")
			}
			checkHeadlessService(t, objects, set)
			checkWorkerPod(t, get(set, "spec", "template"), "tessera-worker")
		})
	}
}

func checkHeadlessService(t *testing.T, objects []object, set object) {
	t.Helper()
	name, _ := get(set, "spec", "serviceName").(string)
	service := find(t, objects, "Service", name)
	if get(service, "spec", "clusterIP") != "None" {
		t.Errorf("Service %s: clusterIP must be None (headless), got %v", name, get(service, "spec", "clusterIP"))
	}
	if get(service, "spec", "publishNotReadyAddresses") != true {
		t.Errorf("Service %s: publishNotReadyAddresses must be true so starting peers resolve", name)
	}
	if !isSubset(get(service, "spec", "selector"), get(set, "spec", "template", "metadata", "labels")) {
		t.Errorf("Service %s: selector does not match the worker pods", name)
	}
	if !isSubset(get(set, "spec", "selector", "matchLabels"), get(set, "spec", "template", "metadata", "labels")) {
		t.Errorf("StatefulSet selector does not match its own pod template")
	}
	if port := portNamed(service, "grpc"); port == nil || number(port["port"]) != 50061 {
		t.Errorf("Service %s: want port grpc 50061, got %v", name, port)
	}
}

// checkWorkerPod checks the default (cuda backend, bf16, one GPU) worker pod template.
func checkWorkerPod(t *testing.T, pod interface{}, subdomain string) {
	t.Helper()
	c := onlyContainer(t, pod)
	args := stringList(c["args"])
	if len(args) == 0 || args[0] != "worker" {
		t.Fatalf("args must start with the worker subcommand: %v", args)
	}
	wantFlag(t, args, "--listen", "0.0.0.0:50061")
	wantFlag(t, args, "--coordinator", coordinatorAddress)
	wantFlag(t, args, "--advertise", strings.Replace(workerAdvertise, "tessera-worker", subdomain, 1))
	wantFlag(t, args, "--model", "/models/model")
	wantFlag(t, args, "--memory-budget-mb", "16384")
	wantFlag(t, args, "--max-new-tokens-limit", "4096") // the coordinator's limit: workers check it again
	wantFlag(t, args, "--backend", "cuda")
	wantFlag(t, args, "--precision", "bf16")
	wantFlag(t, args, "--metrics-port", "9091")
	for _, name := range []string{"POD_NAME", "POD_NAMESPACE"} {
		if get(envVar(c, name), "valueFrom", "fieldRef", "fieldPath") == nil {
			t.Errorf("env %s must come from the downward API (used in --advertise/--coordinator)", name)
		}
	}
	wantFlag(t, args, "--health-port", "50062")
	checkGrpcProbes(t, c, 50062)
	if got := get(c, "resources", "limits", "nvidia.com/gpu"); number(got) != 1 {
		t.Errorf("the default cuda worker must request one GPU, got %v", c["resources"])
	}
	if e := envVar(c, "NCCL_NVLS_ENABLE"); e == nil || e["value"] != "0" {
		t.Errorf("NCCL_NVLS_ENABLE: want \"0\" by default, got %v", e)
	}
	checkShm(t, pod, c)
}

func checkGrpcProbes(t *testing.T, c object, port float64) {
	t.Helper()
	for _, probe := range []string{"startupProbe", "livenessProbe", "readinessProbe"} {
		if got := get(c, probe, "grpc", "port"); number(got) != port {
			t.Errorf("%s: want grpc port %v, got %v", probe, port, get(c, probe))
		}
		if get(c, probe, "periodSeconds") == nil || get(c, probe, "failureThreshold") == nil {
			t.Errorf("%s: timings missing: %v", probe, get(c, probe))
		}
	}
	startup := number(get(c, "startupProbe", "periodSeconds")) * number(get(c, "startupProbe", "failureThreshold"))
	if port == 50062 && startup < 300 {
		t.Errorf("worker startupProbe allows %v s; loading weights needs minutes", startup)
	}
}

func checkShm(t *testing.T, pod interface{}, c object) {
	t.Helper()
	var volumeName string
	for _, m := range c["volumeMounts"].([]interface{}) {
		if mount := m.(object); mount["mountPath"] == "/dev/shm" {
			volumeName, _ = mount["name"].(string)
		}
	}
	if volumeName == "" {
		t.Fatalf("no volume mounted at /dev/shm")
	}
	volumes, _ := get(pod, "spec", "volumes").([]interface{})
	for _, v := range volumes {
		if volume := v.(object); volume["name"] == volumeName {
			if get(volume, "emptyDir", "medium") != "Memory" || get(volume, "emptyDir", "sizeLimit") != "8Gi" {
				t.Errorf("/dev/shm: want emptyDir medium Memory sizeLimit 8Gi, got %v", volume)
			}
			return
		}
	}
	t.Errorf("/dev/shm volume %q is not in the pod's volumes", volumeName)
}

func TestGpusAndNccl(t *testing.T) {
	objects := render(t, "--set", "workers.precision=fp32,workers.nccl.socketIfname=eth0,workers.nccl.debug=INFO",
		"--set", "workers.nccl.nvlsEnable=true")
	c := onlyContainer(t, get(find(t, objects, "StatefulSet", "tessera-worker"), "spec", "template"))
	if got := get(c, "resources", "limits", "nvidia.com/gpu"); number(got) != 1 {
		t.Errorf("nvidia.com/gpu: want 1, got %v", got)
	}
	wantFlag(t, stringList(c["args"]), "--precision", "fp32")
	if got := get(c, "resources", "requests", "cpu"); got != "4" {
		t.Errorf("resources.requests from values must be kept next to the GPU limit, got cpu %v", got)
	}
	for name, want := range map[string]string{"NCCL_SOCKET_IFNAME": "eth0", "NCCL_DEBUG": "INFO", "NCCL_NVLS_ENABLE": "1"} {
		if e := envVar(c, name); e == nil || e["value"] != want {
			t.Errorf("%s: want %q, got %v", name, want, e)
		}
	}
}

func TestCpuBackend(t *testing.T) {
	objects := render(t, "--set", "workers.backend=cpu,workers.gpusPerWorker=0,workers.blasThreads=8")
	c := onlyContainer(t, get(find(t, objects, "StatefulSet", "tessera-worker"), "spec", "template"))
	args := stringList(c["args"])
	wantFlag(t, args, "--backend", "cpu")
	wantFlag(t, args, "--blas-threads", "8")
	if get(c, "resources", "limits", "nvidia.com/gpu") != nil || get(c, "resources", "requests", "nvidia.com/gpu") != nil {
		t.Errorf("cpu backend must not request GPUs: %v", c["resources"])
	}
	for _, e := range c["env"].([]interface{}) {
		if name := fmt.Sprint(e.(object)["name"]); strings.HasPrefix(name, "NCCL_") {
			t.Errorf("cpu backend sets %s", name)
		}
	}
}

// LWS fields as the leaderworkerset.x-k8s.io/v1 CRD defines them.
var (
	lwsSpecFields     = map[string]bool{"replicas": true, "leaderWorkerTemplate": true, "rolloutStrategy": true, "startupPolicy": true, "networkConfig": true}
	lwsTemplateFields = map[string]bool{"leaderTemplate": true, "workerTemplate": true, "size": true, "restartPolicy": true,
		"subGroupPolicy": true, "volumeClaimTemplates": true, "persistentVolumeClaimRetentionPolicy": true}
	lwsRestartPolicies = map[string]bool{"RecreateGroupOnPodRestart": true, "None": true, "Default": true, "RecreateGroupAfterStart": true}
)

func TestLeaderWorkerSet(t *testing.T) {
	objects := render(t, "--set", "workers.kind=LeaderWorkerSet,workers.replicas=4")
	if sets := ofKind(objects, "StatefulSet"); len(sets) != 0 {
		t.Errorf("kind LeaderWorkerSet must render no StatefulSet: %s", summary(objects))
	}
	lws := find(t, objects, "LeaderWorkerSet", "tessera-worker")
	if lws["apiVersion"] != "leaderworkerset.x-k8s.io/v1" {
		t.Errorf("apiVersion: want leaderworkerset.x-k8s.io/v1, got %v", lws["apiVersion"])
	}
	spec := lws["spec"].(object)
	for key := range spec {
		if !lwsSpecFields[key] {
			t.Errorf("spec.%s is not a LeaderWorkerSet field", key)
		}
	}
	template := spec["leaderWorkerTemplate"].(object)
	for key := range template {
		if !lwsTemplateFields[key] {
			t.Errorf("spec.leaderWorkerTemplate.%s is not a LeaderWorkerSet field", key)
		}
	}
	if number(spec["replicas"]) != 1 || number(template["size"]) != 4 {
		t.Errorf("want one group (replicas 1) of size 4, got replicas %v size %v", spec["replicas"], template["size"])
	}
	if policy, _ := template["restartPolicy"].(string); !lwsRestartPolicies[policy] {
		t.Errorf("restartPolicy %q is not in the CRD's enum", policy)
	}
	if policy := get(spec, "networkConfig", "subdomainPolicy"); policy != nil && policy != "Shared" {
		t.Errorf("subdomainPolicy: want Shared, the default (pods resolve under the LWS name), got %v", policy)
	}
	// The LWS controller creates the headless Service named like the LWS; the chart must not.
	for _, s := range ofKind(objects, "Service") {
		if get(s, "metadata", "name") == "tessera-worker" {
			t.Errorf("Service tessera-worker would collide with the one the LWS controller creates")
		}
	}
	checkWorkerPod(t, template["workerTemplate"], "tessera-worker")
	metrics := find(t, objects, "Service", "tessera-worker-metrics")
	if portNamed(metrics, "metrics") == nil ||
		!isSubset(get(metrics, "spec", "selector"), get(template, "workerTemplate", "metadata", "labels")) {
		t.Errorf("Service tessera-worker-metrics must select the worker pods and name its port metrics")
	}
}

func TestReleaseNaming(t *testing.T) {
	objects := render(t, "--release-name", "prod", "--namespace", "inference")
	set := find(t, objects, "StatefulSet", "prod-tessera-worker")
	find(t, objects, "Service", "prod-tessera-coordinator")
	args := stringList(onlyContainer(t, get(set, "spec", "template"))["args"])
	wantFlag(t, args, "--coordinator", "prod-tessera-coordinator-internal.$(POD_NAMESPACE).svc.cluster.local:50052")
	wantFlag(t, args, "--advertise", "$(POD_NAME).prod-tessera-worker.$(POD_NAMESPACE).svc.cluster.local:50061")

	objects = render(t, "--set", "fullnameOverride=llm,clusterDomain=corp.local")
	args = stringList(onlyContainer(t, get(find(t, objects, "StatefulSet", "llm-worker"), "spec", "template"))["args"])
	wantFlag(t, args, "--advertise", "$(POD_NAME).llm-worker.$(POD_NAMESPACE).svc.corp.local:50061")
}

// model.maxContextTokens reaches the coordinator and every worker as the same
// --max-context-tokens; left at 0 neither gets the flag (the checkpoint's own
// max_position_embeddings applies).
func TestMaxContextTokensReachesEveryRole(t *testing.T) {
	for _, tc := range []struct {
		set  []string
		want string
	}{{nil, ""}, {[]string{"--set", "model.maxContextTokens=1048576"}, "1048576"}} {
		objects := render(t, tc.set...)
		coordinator := onlyContainer(t, get(find(t, objects, "Deployment", "tessera-coordinator"), "spec", "template"))
		worker := onlyContainer(t, get(find(t, objects, "StatefulSet", "tessera-worker"), "spec", "template"))
		for role, c := range map[string]object{"coordinator": coordinator, "worker": worker} {
			got, ok := flagValue(stringList(c["args"]), "--max-context-tokens")
			if tc.want == "" && ok {
				t.Errorf("%s: --max-context-tokens %q given by default", role, got)
			}
			if tc.want != "" && got != tc.want {
				t.Errorf("%s: want --max-context-tokens %s, got %q (present %v)", role, tc.want, got, ok)
			}
		}
	}
	if msg := renderFails(t, "--set", "model.maxContextTokens=-1"); !strings.Contains(msg, "model.maxContextTokens") {
		t.Errorf("model.maxContextTokens=-1: want a schema error naming it, got %s", msg)
	}
}

// workers.prefillChunkTokens reaches every worker as --prefill-chunk-tokens;
// left at 0 no worker gets the flag (each sizes its pieces from free memory).
func TestPrefillChunkTokensReachesWorkers(t *testing.T) {
	for _, tc := range []struct {
		set  []string
		want string
	}{{nil, ""}, {[]string{"--set", "workers.prefillChunkTokens=16384"}, "16384"},
		{[]string{"--set", "workers.prefillChunkTokens=4096,workers.kind=LeaderWorkerSet"}, "4096"}} {
		objects := render(t, tc.set...)
		var template interface{}
		if sets := ofKind(objects, "StatefulSet"); len(sets) == 1 {
			template = get(sets[0], "spec", "template")
		} else {
			template = get(find(t, objects, "LeaderWorkerSet", "tessera-worker"), "spec", "leaderWorkerTemplate", "workerTemplate")
		}
		got, ok := flagValue(stringList(onlyContainer(t, template)["args"]), "--prefill-chunk-tokens")
		if tc.want == "" && ok {
			t.Errorf("--prefill-chunk-tokens %q given by default", got)
		}
		if tc.want != "" && got != tc.want {
			t.Errorf("%v: want --prefill-chunk-tokens %s, got %q (present %v)", tc.set, tc.want, got, ok)
		}
	}
	if msg := renderFails(t, "--set", "workers.prefillChunkTokens=-1"); !strings.Contains(msg, "workers.prefillChunkTokens") {
		t.Errorf("workers.prefillChunkTokens=-1: want a schema error naming it, got %s", msg)
	}
}
