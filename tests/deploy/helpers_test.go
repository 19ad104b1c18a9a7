// Helpers for the chart tests: run chart-render (the binary named by
// $CHART_RENDER) on deploy/helm/tessera (under $DEPLOY_DIR) with JSON output
// and walk the objects without a YAML parser. Every successful render is also
// checked for what every Kubernetes object needs: apiVersion, kind,
// metadata.name and the chart's labels.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

type object = map[string]interface{}

func deployDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("DEPLOY_DIR")
	if dir == "" {
		t.Fatal("DEPLOY_DIR is not set (ctest sets it; run these tests through ctest)")
	}
	return dir
}

func chartDir(t *testing.T) string { return filepath.Join(deployDir(t), "helm", "tessera") }

// runRender returns stdout, stderr and the exit code of chart-render.
func runRender(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	binary := os.Getenv("CHART_RENDER")
	if binary == "" {
		t.Fatal("CHART_RENDER is not set (ctest sets it; run these tests through ctest)")
	}
	cmd := exec.Command(binary, append([]string{chartDir(t)}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &exit):
		return stdout.String(), stderr.String(), exit.ExitCode()
	}
	t.Fatalf("running %s: %v", binary, err)
	return "", "", -1
}

// render renders with --output json and the given flags; any failure is fatal.
func render(t *testing.T, args ...string) []object {
	t.Helper()
	stdout, stderr, code := runRender(t, append([]string{"--output", "json"}, args...)...)
	if code != 0 {
		t.Fatalf("chart-render %v: exit %d\n%s", args, code, stderr)
	}
	var objects []object
	if err := json.Unmarshal([]byte(stdout), &objects); err != nil {
		t.Fatalf("chart-render %v: output is not a JSON array: %v", args, err)
	}
	for _, o := range objects {
		checkIdentified(t, o)
	}
	return objects
}

// renderFails expects exit status 1 and returns the message.
func renderFails(t *testing.T, args ...string) string {
	t.Helper()
	_, stderr, code := runRender(t, append([]string{"--output", "json"}, args...)...)
	if code != 1 {
		t.Fatalf("chart-render %v: want exit 1 (rejected), got %d\n%s", args, code, stderr)
	}
	return stderr
}

func checkIdentified(t *testing.T, o object) {
	t.Helper()
	id := fmt.Sprintf("%v/%v", o["kind"], get(o, "metadata", "name"))
	for _, field := range []string{"apiVersion", "kind"} {
		if s, _ := o[field].(string); s == "" {
			t.Errorf("%s: %s is missing", id, field)
		}
	}
	if s, _ := get(o, "metadata", "name").(string); s == "" {
		t.Errorf("%s: metadata.name is missing", id)
	}
	labels, _ := get(o, "metadata", "labels").(object)
	for _, key := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by",
		"helm.sh/chart"} {
		if s, _ := labels[key].(string); s == "" {
			t.Errorf("%s: label %s is missing", id, key)
		}
	}
}

// get walks maps by string keys and lists by int indexes; nil when absent.
func get(v interface{}, path ...interface{}) interface{} {
	for _, step := range path {
		switch key := step.(type) {
		case string:
			m, ok := v.(object)
			if !ok {
				return nil
			}
			v = m[key]
		case int:
			l, ok := v.([]interface{})
			if !ok || key >= len(l) {
				return nil
			}
			v = l[key]
		}
	}
	return v
}

func ofKind(objects []object, kind string) []object {
	var found []object
	for _, o := range objects {
		if o["kind"] == kind {
			found = append(found, o)
		}
	}
	return found
}

func find(t *testing.T, objects []object, kind, name string) object {
	t.Helper()
	for _, o := range ofKind(objects, kind) {
		if get(o, "metadata", "name") == name {
			return o
		}
	}
	t.Fatalf("no %s named %q among: %s", kind, name, summary(objects))
	return nil
}

func summary(objects []object) string {
	var parts []string
	for _, o := range objects {
		parts = append(parts, fmt.Sprintf("%v/%v", o["kind"], get(o, "metadata", "name")))
	}
	return strings.Join(parts, ", ")
}

// onlyContainer returns the single container of a pod template.
func onlyContainer(t *testing.T, podTemplate interface{}) object {
	t.Helper()
	containers, _ := get(podTemplate, "spec", "containers").([]interface{})
	if len(containers) != 1 {
		t.Fatalf("want 1 container, got %d", len(containers))
	}
	return containers[0].(object)
}

func stringList(v interface{}) []string {
	var out []string
	list, _ := v.([]interface{})
	for _, item := range list {
		out = append(out, fmt.Sprint(item))
	}
	return out
}

// flagValue returns the argument after flag ("--model /x" style), or "".
func flagValue(args []string, flag string) (string, bool) {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

func wantFlag(t *testing.T, args []string, flag, want string) {
	t.Helper()
	got, ok := flagValue(args, flag)
	if !ok || got != want {
		t.Errorf("%s: want %q, got %q (present: %v) in %v", flag, want, got, ok, args)
	}
}

// envVar returns the env entry named name of a container, or nil.
func envVar(container object, name string) object {
	list, _ := container["env"].([]interface{})
	for _, item := range list {
		if e, _ := item.(object); e["name"] == name {
			return e
		}
	}
	return nil
}

func number(v interface{}) float64 {
	f, _ := v.(float64)
	return f
}

// isSubset reports whether every key of sub has the same value in super.
func isSubset(sub, super interface{}) bool {
	a, _ := sub.(object)
	b, _ := super.(object)
	if len(a) == 0 {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func portNamed(service object, name string) object {
	ports, _ := get(service, "spec", "ports").([]interface{})
	for _, p := range ports {
		if port, _ := p.(object); port["name"] == name {
			return port
		}
	}
	return nil
}
