// The Grafana dashboard against the metrics contract: it must use every
// metric the coordinator and workers export and no name outside the list (a
// typo would draw an empty panel), take quantiles from _bucket rates, and
// read from the ${datasource} variable. The chart's copy and deploy/grafana's
// must be the same file.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The metric names the C++ side exposes (coordinator, then workers).
var contractMetrics = []string{
	"tessera_time_to_first_token_seconds", "tessera_inter_token_latency_seconds", "tessera_request_duration_seconds",
	"tessera_request_queue_time_seconds", "tessera_prompt_tokens_total", "tessera_generation_tokens_total",
	"tessera_requests_total", "tessera_requests_running", "tessera_requests_waiting", "tessera_workers_ready",
	"tessera_context_capacity_tokens", "tessera_context_available_tokens", "tessera_build_info",
	"tessera_worker_memory_used_bytes", "tessera_worker_memory_capacity_bytes", "tessera_worker_active_requests",
	"tessera_worker_prefill_step_seconds", "tessera_worker_decode_step_seconds", "tessera_worker_decode_batch_size",
	"tessera_worker_decode_waiting_requests", "tessera_worker_decode_queue_seconds", "tessera_peer_transport_bytes_total",
	"tessera_peer_transport_seconds", "tessera_worker_prefix_cache_bytes", "tessera_worker_prefix_cache_blocks",
	"tessera_worker_prefix_cache_hit_tokens_total", "tessera_worker_prefix_cache_evictions_total",
}

var contractHistograms = []string{
	"tessera_time_to_first_token_seconds", "tessera_inter_token_latency_seconds", "tessera_request_duration_seconds",
	"tessera_request_queue_time_seconds", "tessera_worker_prefill_step_seconds", "tessera_worker_decode_step_seconds",
	"tessera_worker_decode_batch_size", "tessera_worker_decode_queue_seconds", "tessera_peer_transport_seconds",
}

func readDashboard(t *testing.T) ([]byte, object) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(deployDir(t), "grafana", "tessera-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dashboard object
	if err := json.Unmarshal(raw, &dashboard); err != nil {
		t.Fatalf("tessera-dashboard.json: %v", err)
	}
	return raw, dashboard
}

func TestDashboardCopiesMatch(t *testing.T) {
	raw, _ := readDashboard(t)
	chartCopy, err := os.ReadFile(filepath.Join(chartDir(t), "dashboards", "tessera-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, chartCopy) {
		t.Errorf("deploy/grafana/tessera-dashboard.json and deploy/helm/tessera/dashboards/tessera-dashboard.json differ; " +
			"edit one and copy it over the other")
	}
}

func TestDashboardMetrics(t *testing.T) {
	_, dashboard := readDashboard(t)
	if v := number(dashboard["schemaVersion"]); v < 36 {
		t.Errorf("schemaVersion %v: want a current Grafana schema (>= 36)", v)
	}
	if !hasDatasourceVariable(dashboard) {
		t.Errorf("templating needs a variable \"datasource\" of type datasource (query prometheus)")
	}
	var exprs []string
	ids := map[float64]bool{}
	panels, _ := dashboard["panels"].([]interface{})
	for _, p := range panels {
		panel := p.(object)
		if ids[number(panel["id"])] {
			t.Errorf("panel id %v is used twice", panel["id"])
		}
		ids[number(panel["id"])] = true
		if x, w := number(get(panel, "gridPos", "x")), number(get(panel, "gridPos", "w")); w == 0 || x+w > 24 {
			t.Errorf("panel %q: gridPos %v does not fit the 24-column grid", panel["title"], panel["gridPos"])
		}
		if panel["type"] == "row" {
			continue
		}
		if get(panel, "datasource", "uid") != "${datasource}" {
			t.Errorf("panel %q: datasource must be ${datasource}, got %v", panel["title"], panel["datasource"])
		}
		targets, _ := panel["targets"].([]interface{})
		if len(targets) == 0 {
			t.Errorf("panel %q has no queries", panel["title"])
		}
		for _, target := range targets {
			exprs = append(exprs, get(target, "expr").(string))
		}
	}
	all := strings.Join(exprs, "\n")
	known := map[string]bool{}
	for _, name := range contractMetrics {
		known[name] = true
		if !strings.Contains(all, name) {
			t.Errorf("no panel uses %s", name)
		}
	}
	for _, name := range regexp.MustCompile(`tessera_[a-z_]+`).FindAllString(all, -1) {
		if base := strings.TrimSuffix(name, "_bucket"); !known[base] {
			t.Errorf("%s is not in the metrics contract", name)
		}
	}
	for _, name := range contractHistograms {
		if !strings.Contains(all, "histogram_quantile(0.95, sum by (") || !strings.Contains(all, name+"_bucket{") {
			t.Errorf("%s: want histogram_quantile over rate(%s_bucket[...])", name, name)
		}
	}
}

func hasDatasourceVariable(dashboard object) bool {
	variables, _ := get(dashboard, "templating", "list").([]interface{})
	for _, v := range variables {
		if variable := v.(object); variable["name"] == "datasource" {
			return variable["type"] == "datasource" && variable["query"] == "prometheus"
		}
	}
	return false
}
