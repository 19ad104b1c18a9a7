// Output: a template's text is split into documents on "---" lines (as Helm
// does); empty documents are dropped. Each document must parse as YAML
// without duplicate keys, so a broken template fails here, naming its file,
// rather than at `kubectl apply`. YAML output keeps the rendered text as is;
// JSON output is one array of objects, for checks without a YAML parser.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"
)

var documentSeparator = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

func splitManifests(source, text string) []manifest {
	var docs []manifest
	for _, doc := range documentSeparator.Split(text, -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		docs = append(docs, manifest{source: source, text: strings.Trim(doc, "\n")})
	}
	return docs
}

func stripComments(doc string) string {
	var kept []string
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, "\n")
}

func toJSONObject(m manifest) (json.RawMessage, error) {
	data, err := yaml.YAMLToJSONStrict([]byte(m.text))
	if err != nil {
		return nil, fmt.Errorf("%s: rendered YAML does not parse: %v\n%s", m.source, err, numbered(m.text))
	}
	if !strings.HasPrefix(strings.TrimSpace(string(data)), "{") {
		return nil, fmt.Errorf("%s: a rendered document is not a mapping:\n%s", m.source, numbered(m.text))
	}
	return data, nil
}

func numbered(text string) string {
	var b strings.Builder
	for i, line := range strings.Split(text, "\n") {
		fmt.Fprintf(&b, "%4d  %s\n", i+1, line)
	}
	return b.String()
}

func writeYAML(out io.Writer, manifests []manifest) error {
	var b strings.Builder
	for _, m := range manifests {
		if _, err := toJSONObject(m); err != nil {
			return err
		}
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.source, m.text)
	}
	_, err := io.WriteString(out, b.String())
	return err
}

func writeJSON(out io.Writer, manifests []manifest) error {
	objects := make([]json.RawMessage, 0, len(manifests))
	for _, m := range manifests {
		obj, err := toJSONObject(m)
		if err != nil {
			return err
		}
		objects = append(objects, obj)
	}
	data, err := json.MarshalIndent(objects, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s\n", data)
	return err
}
