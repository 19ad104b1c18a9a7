// Rendering: every file in templates/ is parsed into one template set (so any
// file may `include` a partial defined in _helpers.tpl), then each non-partial
// file is executed with Helm's top-level objects. Functions are sprig's
// (minus env/expandenv, as in Helm) plus Helm's own: include, tpl, required,
// toYaml, fromYaml, fromYamlArray, toJson, fromJson, fromJsonArray, lookup.
// Missing keys render as empty, as in Helm's default (non-strict) mode.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"sigs.k8s.io/yaml"
)

type manifest struct {
	source string // "tessera/templates/x.yaml"
	text   string
}

type rendered struct {
	manifests []manifest
	notes     string
}

// files is .Files: the chart's non-template files.
type files map[string][]byte

func (f files) Get(name string) string      { return string(f[name]) }
func (f files) GetBytes(name string) []byte { return f[name] }

type apiVersions []string

func (a apiVersions) Has(version string) bool {
	for _, v := range a {
		if v == version {
			return true
		}
	}
	return false
}

type kubeVersion struct{ Version, Major, Minor, GitVersion string }

type capabilities struct {
	KubeVersion kubeVersion
	APIVersions apiVersions
}

var builtinAPIVersions = []string{"v1", "apps/v1", "batch/v1", "policy/v1", "networking.k8s.io/v1",
	"rbac.authorization.k8s.io/v1", "autoscaling/v2", "apiextensions.k8s.io/v1"}

func renderChart(c *chart, values map[string]interface{}, o options) (*rendered, error) {
	t := template.New(c.meta.Name).Option("missingkey=zero")
	t.Funcs(funcMap(t))
	for _, name := range c.templateNames() {
		if _, err := t.New(path.Join(c.meta.Name, name)).Parse(c.templates[name]); err != nil {
			return nil, err
		}
	}
	top := map[string]interface{}{
		"Values": values,
		"Release": map[string]interface{}{"Name": o.releaseName, "Namespace": o.namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1},
		"Chart": map[string]interface{}{"Name": c.meta.Name, "Version": c.meta.Version, "AppVersion": c.meta.AppVersion,
			"Description": c.meta.Description, "Type": c.meta.Type, "APIVersion": c.meta.APIVersion},
		"Capabilities": capabilities{
			KubeVersion: kubeVersion{Version: "v1.30.0", Major: "1", Minor: "30", GitVersion: "v1.30.0"},
			APIVersions: append(append(apiVersions{}, builtinAPIVersions...), o.apiVersions...),
		},
		"Files": files(c.files),
	}
	r := &rendered{}
	for _, name := range c.templateNames() {
		base := path.Base(name)
		if strings.HasPrefix(base, "_") {
			continue
		}
		full := path.Join(c.meta.Name, name)
		top["Template"] = map[string]interface{}{"Name": full, "BasePath": path.Join(c.meta.Name, "templates")}
		var out strings.Builder
		if err := t.ExecuteTemplate(&out, full, top); err != nil {
			return nil, shortTemplateError(err)
		}
		text := strings.ReplaceAll(out.String(), "<no value>", "")
		if base == "NOTES.txt" {
			r.notes = text
			continue
		}
		r.manifests = append(r.manifests, splitManifests(full, text)...)
	}
	return r, nil
}

func funcMap(t *template.Template) template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	depth := map[string]int{}
	f["include"] = func(name string, data interface{}) (string, error) {
		if depth[name] > 100 {
			return "", fmt.Errorf("include %q: nested too deep", name)
		}
		depth[name]++
		defer func() { depth[name]-- }()
		var out strings.Builder
		err := t.ExecuteTemplate(&out, name, data)
		return out.String(), err
	}
	f["tpl"] = func(text string, data interface{}) (string, error) {
		clone, err := t.Clone()
		if err != nil {
			return "", err
		}
		parsed, err := clone.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var out strings.Builder
		if err := parsed.Execute(&out, data); err != nil {
			return "", err
		}
		return strings.ReplaceAll(out.String(), "<no value>", ""), nil
	}
	f["required"] = func(message string, value interface{}) (interface{}, error) {
		if s, ok := value.(string); value == nil || (ok && s == "") {
			return value, fmt.Errorf("%s", message)
		}
		return value, nil
	}
	f["toYaml"] = func(v interface{}) string {
		data, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(data), "\n")
	}
	f["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	f["fromYamlArray"] = func(s string) []interface{} {
		var a []interface{}
		if err := yaml.Unmarshal([]byte(s), &a); err != nil {
			a = []interface{}{err.Error()}
		}
		return a
	}
	f["toJson"] = func(v interface{}) string {
		data, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(data)
	}
	f["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	f["fromJsonArray"] = func(s string) []interface{} {
		var a []interface{}
		if err := json.Unmarshal([]byte(s), &a); err != nil {
			a = []interface{}{err.Error()}
		}
		return a
	}
	// Without a cluster, lookup finds nothing (as in `helm template`).
	f["lookup"] = func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	return f
}

var (
	templateLocation = regexp.MustCompile(`template: ([^:]+:\d+:\d+):`)
	calledFailure    = regexp.MustCompile(`error calling (?:fail|required): (?s)(.*)$`)
)

// shortTemplateError turns text/template's nested "error calling fail" chain
// into Helm's form: "execution error at (FILE:LINE:COL): MESSAGE".
func shortTemplateError(err error) error {
	message := calledFailure.FindStringSubmatch(err.Error())
	location := templateLocation.FindStringSubmatch(err.Error())
	if message == nil || location == nil {
		return err
	}
	return errors.New("execution error at (" + location[1] + "): " + message[1])
}
