// chart-render renders a Helm chart without Helm, so that CI can check the
// Tessera chart on a machine with only Debian's Go packages and no network.
// It does what `helm template` does for the features the chart uses, with the
// same libraries Helm uses (text/template + sprig, sigs.k8s.io/yaml,
// gojsonschema): merge values.yaml with -f files and --set, validate against
// values.schema.json, render templates/ (partials "_*" are only defined,
// NOTES.txt is kept apart) and print multi-document YAML, a JSON array, or the
// rendered NOTES. Anything it does not support fails loudly rather than
// rendering differently from Helm.
//
// Exit status: 0 rendered, 1 values/schema/template error, 2 bad usage.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type options struct {
	chartDir    string
	valueFiles  stringList
	sets        stringList
	setStrings  stringList
	releaseName string
	namespace   string
	output      string
	apiVersions stringList
}

const usage = `usage: chart-render [flags] CHART_DIR
  -f, --values FILE      values file merged over the chart's values.yaml (repeatable)
  --set a.b=c,d=e        typed override: ints, true/false, null, else string (repeatable)
  --set-string a.b=c     override kept as a string (repeatable)
  --release-name NAME    .Release.Name (default "tessera")
  --namespace NS         .Release.Namespace (default "default")
  --api-versions G/V     add to .Capabilities.APIVersions (repeatable)
  --output yaml|json|notes  (default yaml)
`

func parseArgs(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("chart-render", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&o.valueFiles, "f", "")
	fs.Var(&o.valueFiles, "values", "")
	fs.Var(&o.sets, "set", "")
	fs.Var(&o.setStrings, "set-string", "")
	fs.Var(&o.apiVersions, "api-versions", "")
	fs.StringVar(&o.releaseName, "release-name", "tessera", "")
	fs.StringVar(&o.namespace, "namespace", "default", "")
	fs.StringVar(&o.output, "output", "yaml", "")
	// Go's flag package stops at the first positional argument; allow the
	// chart directory anywhere by parsing what follows it again.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return o, err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(positional) != 1 {
		return o, fmt.Errorf("expected one CHART_DIR, given %d", len(positional))
	}
	o.chartDir = positional[0]
	switch o.output {
	case "yaml", "json", "notes":
	default:
		return o, fmt.Errorf("--output must be yaml, json or notes. Given: %q", o.output)
	}
	return o, nil
}

func main() {
	o, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "chart-render: %v\n%s", err, usage)
		os.Exit(2)
	}
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "chart-render: %v\n", err)
		os.Exit(1)
	}
}

func run(o options, out io.Writer) error {
	c, err := loadChart(o.chartDir)
	if err != nil {
		return err
	}
	values, err := mergedValues(c, o)
	if err != nil {
		return err
	}
	if err := validateValues(c, values); err != nil {
		return err
	}
	r, err := renderChart(c, values, o)
	if err != nil {
		return err
	}
	switch o.output {
	case "json":
		return writeJSON(out, r.manifests)
	case "notes":
		_, err := io.WriteString(out, r.notes)
		return err
	default:
		return writeYAML(out, r.manifests)
	}
}
