// Values: the chart's values.yaml, then each -f file, then --set/--set-string
// in order, merged the way Helm coalesces them (maps merge key by key, other
// values replace, null deletes), then validated against values.schema.json
// with gojsonschema, the validator Helm 3 has long used. --set types follow
// Helm's strvals: true/false, null, integers (no leading zero), else strings.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/xeipuuv/gojsonschema"
	"sigs.k8s.io/yaml"
)

func mergedValues(c *chart, o options) (map[string]interface{}, error) {
	values := deepCopyMap(c.values)
	for _, file := range o.valueFiles {
		raw, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		var override map[string]interface{}
		if err := yaml.Unmarshal(raw, &override); err != nil {
			return nil, fmt.Errorf("%s: %v", file, err)
		}
		mergeInto(values, override)
	}
	for _, group := range []struct {
		list      []string
		asStrings bool
	}{{o.sets, false}, {o.setStrings, true}} {
		for _, expr := range group.list {
			override, err := parseSet(expr, group.asStrings)
			if err != nil {
				return nil, err
			}
			mergeInto(values, override)
		}
	}
	return values, nil
}

// mergeInto overlays src on dst: nested maps merge, null removes the key.
func mergeInto(dst, src map[string]interface{}) {
	for key, value := range src {
		if value == nil {
			delete(dst, key)
			continue
		}
		srcMap, srcIsMap := value.(map[string]interface{})
		dstMap, dstIsMap := dst[key].(map[string]interface{})
		if srcIsMap && dstIsMap {
			mergeInto(dstMap, srcMap)
			continue
		}
		dst[key] = value
	}
}

func deepCopyMap(m map[string]interface{}) map[string]interface{} {
	raw, _ := json.Marshal(m)
	var copied map[string]interface{}
	_ = json.Unmarshal(raw, &copied)
	if copied == nil {
		copied = map[string]interface{}{}
	}
	return copied
}

// parseSet turns "a.b=1,c=x" into {"a": {"b": 1}, "c": "x"}. "\," keeps a comma.
func parseSet(expr string, asString bool) (map[string]interface{}, error) {
	result := map[string]interface{}{}
	for _, assignment := range splitUnescaped(expr, ',') {
		key, raw, ok := strings.Cut(assignment, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("--set %q: expected key=value", assignment)
		}
		if strings.ContainsAny(key, "[]{}") {
			return nil, fmt.Errorf("--set %q: list syntax is not supported by chart-render; use a -f values file", assignment)
		}
		path := strings.Split(key, ".")
		node := result
		for _, part := range path[:len(path)-1] {
			child, ok := node[part].(map[string]interface{})
			if !ok {
				child = map[string]interface{}{}
				node[part] = child
			}
			node = child
		}
		node[path[len(path)-1]] = typedValue(raw, asString)
	}
	return result, nil
}

func splitUnescaped(s string, sep byte) []string {
	var parts []string
	var current strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && s[i+1] == sep {
			current.WriteByte(sep)
			i++
			continue
		}
		if s[i] == sep {
			parts = append(parts, current.String())
			current.Reset()
			continue
		}
		current.WriteByte(s[i])
	}
	return append(parts, current.String())
}

func typedValue(raw string, asString bool) interface{} {
	switch {
	case asString:
		return raw
	case strings.EqualFold(raw, "true"):
		return true
	case strings.EqualFold(raw, "false"):
		return false
	case strings.EqualFold(raw, "null"):
		return nil
	case raw == "0":
		return int64(0)
	}
	if raw != "" && raw[0] != '0' {
		if n, err := strconv.ParseInt(raw, 10, 64); err == nil {
			return n
		}
	}
	return raw
}

// validateValues reports every violation, one per line, each naming the value
// path ("workers.replicas: Must be greater than or equal to 1").
func validateValues(c *chart, values map[string]interface{}) error {
	if c.schema == nil {
		return nil
	}
	raw, err := json.Marshal(values)
	if err != nil {
		return err
	}
	result, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(c.schema), gojsonschema.NewBytesLoader(raw))
	if err != nil {
		return fmt.Errorf("values.schema.json: %v", err)
	}
	if result.Valid() {
		return nil
	}
	var lines []string
	for _, e := range result.Errors() {
		lines = append(lines, fmt.Sprintf("- %s: %s", e.Field(), e.Description()))
	}
	sort.Strings(lines)
	return fmt.Errorf("values don't meet the chart's values.schema.json:\n%s", strings.Join(lines, "\n"))
}
