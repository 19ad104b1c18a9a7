// Loading a chart directory the way Helm's loader sees it: Chart.yaml
// metadata, values.yaml, values.schema.json, templates/ and every other file
// (reachable through .Files.Get). Values are decoded with sigs.k8s.io/yaml,
// as Helm does, so numbers are float64 here exactly as they are in Helm.
package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

type chartMetadata struct {
	APIVersion  string `json:"apiVersion"`
	Name        string `json:"name"`
	Version     string `json:"version"`
	AppVersion  string `json:"appVersion"`
	Description string `json:"description"`
	Type        string `json:"type"`
	KubeVersion string `json:"kubeVersion"`
	// Fields Helm knows but templates rarely read; accepted, not exposed.
	Keywords     []string                 `json:"keywords"`
	Home         string                   `json:"home"`
	Sources      []string                 `json:"sources"`
	Maintainers  []map[string]string      `json:"maintainers"`
	Icon         string                   `json:"icon"`
	Annotations  map[string]string        `json:"annotations"`
	Dependencies []map[string]interface{} `json:"dependencies"`
	Deprecated   bool                     `json:"deprecated"`
}

type chart struct {
	meta      chartMetadata
	values    map[string]interface{}
	schema    []byte            // nil when the chart has no values.schema.json
	templates map[string]string // "templates/x.yaml" -> text
	files     map[string][]byte // everything else, for .Files
}

// Files Helm keeps out of .Files.
var notFiles = map[string]bool{"Chart.yaml": true, "values.yaml": true, "values.schema.json": true,
	"Chart.lock": true, ".helmignore": true}

func loadChart(dir string) (*chart, error) {
	c := &chart{templates: map[string]string{}, files: map[string][]byte{}}
	raw, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, fmt.Errorf("%s is not a chart: %v", dir, err)
	}
	if err := yaml.UnmarshalStrict(raw, &c.meta); err != nil {
		return nil, fmt.Errorf("Chart.yaml: %v", err)
	}
	if c.meta.APIVersion != "v2" || c.meta.Name == "" || c.meta.Version == "" {
		return nil, fmt.Errorf("Chart.yaml needs apiVersion v2, name and version. Given: apiVersion %q, name %q, version %q",
			c.meta.APIVersion, c.meta.Name, c.meta.Version)
	}
	if raw, err = os.ReadFile(filepath.Join(dir, "values.yaml")); err == nil {
		if err := yaml.Unmarshal(raw, &c.values); err != nil {
			return nil, fmt.Errorf("values.yaml: %v", err)
		}
	}
	if c.values == nil {
		c.values = map[string]interface{}{}
	}
	if raw, err = os.ReadFile(filepath.Join(dir, "values.schema.json")); err == nil {
		c.schema = raw
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(rel, "charts/") {
			return fmt.Errorf("%s: subcharts are not supported by chart-render", rel)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(rel, "templates/"):
			c.templates[rel] = string(data)
		case !notFiles[rel]:
			c.files[rel] = data
		}
		return nil
	})
	return c, err
}

func (c *chart) templateNames() []string {
	names := make([]string, 0, len(c.templates))
	for name := range c.templates {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
