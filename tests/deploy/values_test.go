// Bad values must fail the install with a message that names the value,
// never render something else: values.schema.json rejects wrong types, enums,
// ranges and unknown keys; the chart's own checks reject combinations the
// schema cannot express (GPUs and backend, model source and path).
package deploy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSchemaRejects(t *testing.T) {
	cases := []struct {
		name, set, wantInMessage string
	}{
		{"no workers", "workers.replicas=0", "workers.replicas: Must be greater than or equal to 1"},
		{"unknown worker kind", "workers.kind=Deployment", "workers.kind"},
		{"misspelt top-level key", "workerz.replicas=3", "Additional property workerz is not allowed"},
		{"misspelt key in a section", "metrics.servicemonitor.enabled=true", "Additional property servicemonitor is not allowed"},
		{"string for a number", "workers.memoryBudgetMb=lots", "workers.memoryBudgetMb: Invalid type. Expected: integer, given: string"},
		{"unknown backend", "workers.backend=rocm", "workers.backend"},
		{"unknown precision", "workers.precision=fp8", "workers.precision"},
		{"two GPUs per worker", "workers.gpusPerWorker=2", "workers.gpusPerWorker: Must be less than or equal to 1"},
		{"port out of range", "coordinator.ports.grpc=0", "coordinator.ports.grpc"},
		{"second coordinator", "coordinator.replicas=2", "coordinator.replicas"},
		{"bad shm size", "workers.shm.sizeLimit=lots", "workers.shm.sizeLimit"},
		{"bad pull policy", "image.pullPolicy=Sometimes", "image.pullPolicy"},
		{"misspelt security key", "security.tlsEnabled=false", "Additional property tlsEnabled is not allowed"},
		{"string for tls", "security.tls=maybe", "security.tls: Invalid type. Expected: boolean"},
		{"bad secret name", "security.clusterTls.existingSecret=Not_A_Name", "security.clusterTls.existingSecret"},
		{"internal port out of range", "coordinator.ports.internal=70000", "coordinator.ports.internal"},
		{"http port out of range", "coordinator.ports.http=0", "coordinator.ports.http"},
		{"negative queue", "coordinator.args.maxQueuedRequests=-1", "maxQueuedRequests"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if message := renderFails(t, "--set", c.set); !strings.Contains(message, c.wantInMessage) {
				t.Errorf("--set %s: message lacks %q:\n%s", c.set, c.wantInMessage, message)
			}
		})
	}
	t.Run("quoted number", func(t *testing.T) {
		message := renderFails(t, "--set-string", "workers.replicas=3")
		if !strings.Contains(message, "workers.replicas: Invalid type") {
			t.Errorf("message lacks the path:\n%s", message)
		}
	})
	t.Run("typo in a values file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "typo.yaml")
		if err := os.WriteFile(file, []byte("workers:\n  replica: 4\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if message := renderFails(t, "-f", file); !strings.Contains(message, "Additional property replica is not allowed") {
			t.Errorf("message does not name the misspelt key:\n%s", message)
		}
	})
}

func TestCrossFieldRules(t *testing.T) {
	cases := []struct{ set, wantInMessage string }{
		{"workers.gpusPerWorker=0", "workers.gpusPerWorker must be 1 when workers.backend is cuda. Given: 0"},
		{"workers.backend=cpu", "workers.gpusPerWorker must be 0 when workers.backend is cpu. Given: 1"},
		{"model.source=hostPath", "model.hostPath.path is required when model.source is hostPath"},
		{"model.pvc.existingClaim=", "model.pvc.existingClaim is required when model.source is pvc"},
		{"model.path=/data/model", "model.path must lie under model.mountPath (/models)"},
		{"security.clusterTls.existingSecret=", "security.clusterTls.existingSecret is required when security.tls is true"},
		{"security.authTokens.existingSecret=", "security.authTokens.existingSecret is required when security.tls is true"},
		{"coordinator.ports.internal=50051", "coordinator.ports must be five different ports. Given: grpc 50051, internal 50051"},
		{"coordinator.ports.http=9090", "coordinator.ports must be five different ports"},
		{"workers.ports.health=9091", "workers.ports must be three different ports"},
	}
	for _, c := range cases {
		if message := renderFails(t, "--set", c.set); !strings.Contains(message, c.wantInMessage) {
			t.Errorf("--set %s: message lacks %q:\n%s", c.set, c.wantInMessage, message)
		}
	}
}
