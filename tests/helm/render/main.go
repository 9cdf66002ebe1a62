// ns-helm-render: what `helm template` does for helm/nodescope, offline, so the chart is tested
// without Helm or a cluster (Debian packages neither). It follows Helm 3's engine where the chart
// can tell: values read as YAML 1.1 through JSON types (numbers are float64, `on` is true),
// deep-merged -f files (null deletes a key, lists are replaced), sprig's functions without env
// and expandenv, Helm's include/tpl/required/toYaml/fromYaml/toJson/fromJson/lookup,
// missingkey=zero with "<no value>" erased, empty documents dropped, and documents ordered by
// Helm's install order with a "# Source:" line each.
//
// Usage: ns-helm-render [-n NAMESPACE] [--name RELEASE] [-f values.yaml]... CHART_DIR
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v2"
)

type valueFiles []string

func (v *valueFiles) String() string     { return strings.Join(*v, ",") }
func (v *valueFiles) Set(s string) error { *v = append(*v, s); return nil }

// readYAML parses a file the way Helm's chartutil.ReadValues does: YAML 1.1 (yaml.v2), then
// through encoding/json so maps are map[string]interface{} and numbers float64.
func readYAML(file string) (map[string]interface{}, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return parseYAML(data, file)
}

func parseYAML(data []byte, origin string) (map[string]interface{}, error) {
	var raw interface{}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: %v", origin, err)
	}
	out := map[string]interface{}{}
	if raw == nil {
		return out, nil
	}
	j, err := json.Marshal(jsonable(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", origin, err)
	}
	if err := json.Unmarshal(j, &out); err != nil {
		return nil, fmt.Errorf("%s: top level is not a map: %v", origin, err)
	}
	return out, nil
}

// jsonable turns yaml.v2's map[interface{}]interface{} into something encoding/json accepts.
func jsonable(v interface{}) interface{} {
	switch t := v.(type) {
	case map[interface{}]interface{}:
		m := map[string]interface{}{}
		for k, e := range t {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []interface{}:
		for i := range t {
			t[i] = jsonable(t[i])
		}
	}
	return v
}

// coalesce merges src over dst as Helm does for -f files: maps merge key by key, anything else
// (lists included) replaces, an explicit null removes the key.
func coalesce(dst, src map[string]interface{}) {
	for k, sv := range src {
		if sv == nil {
			delete(dst, k)
			continue
		}
		sm, sIsMap := sv.(map[string]interface{})
		dm, dIsMap := dst[k].(map[string]interface{})
		if sIsMap && dIsMap {
			coalesce(dm, sm)
			continue
		}
		dst[k] = sv
	}
}

// toYAML is sigs.k8s.io/yaml's Marshal, which Helm's toYaml uses: JSON first (sorted keys), then
// YAML from that JSON, so numbers print as integers where they are whole.
func toYAML(v interface{}) (string, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	var ordered yaml.MapSlice
	var out []byte
	if err := yaml.Unmarshal(j, &ordered); err == nil && len(j) > 0 && j[0] == '{' {
		out, err = yaml.Marshal(ordered)
		if err != nil {
			return "", err
		}
	} else {
		var any interface{}
		if err := yaml.Unmarshal(j, &any); err != nil {
			return "", err
		}
		if out, err = yaml.Marshal(any); err != nil {
			return "", err
		}
	}
	return string(out), nil
}

// Helm's install order (pkg/releaseutil/kind_sorter.go), the kinds this chart can emit first.
var installOrder = []string{"Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
	"PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
	"ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
	"CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
	"ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service",
	"DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
	"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
	"APIService"}

func kindRank(doc string) int {
	var head struct {
		Kind string `yaml:"kind"`
	}
	_ = yaml.Unmarshal([]byte(doc), &head)
	for i, k := range installOrder {
		if k == head.Kind {
			return i
		}
	}
	return len(installOrder) // unknown kinds last, as Helm does
}

type manifest struct {
	source string
	body   string
	rank   int
}

func run() error {
	var files valueFiles
	namespace, release := "default", "nodescope"
	args := os.Args[1:]
	chartDir := ""
	for i := 0; i < len(args); i++ {
		next := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("%s needs a value", args[i])
			}
			i++
			return args[i], nil
		}
		var err error
		switch args[i] {
		case "-f", "--values":
			var f string
			f, err = next()
			files = append(files, f)
		case "-n", "--namespace":
			namespace, err = next()
		case "--name":
			release, err = next()
		default:
			if strings.HasPrefix(args[i], "-") || chartDir != "" {
				return fmt.Errorf("usage: ns-helm-render [-n NS] [--name RELEASE] [-f values.yaml]... CHART_DIR")
			}
			chartDir = args[i]
		}
		if err != nil {
			return err
		}
	}
	if chartDir == "" {
		return fmt.Errorf("usage: ns-helm-render [-n NS] [--name RELEASE] [-f values.yaml]... CHART_DIR")
	}

	chart, err := readYAML(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return err
	}
	values, err := readYAML(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return err
	}
	for _, f := range files {
		over, err := readYAML(f)
		if err != nil {
			return err
		}
		coalesce(values, over)
	}
	chartName := fmt.Sprint(chart["name"])

	// Helm parses every template of the chart into one set, so any file's defines are shared.
	root := template.New("gotpl").Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	includeDepth := 0
	funcs["include"] = func(name string, data interface{}) (string, error) {
		includeDepth++
		defer func() { includeDepth-- }()
		if includeDepth > 1000 {
			return "", fmt.Errorf("include %q: recursion too deep", name)
		}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, data); err != nil {
			return "", err
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return nil, fmt.Errorf("%s", msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return nil, fmt.Errorf("%s", msg)
		}
		return v, nil
	}
	// Helm's toYaml/fromYaml swallow errors (empty string / {"Error": ...}); so does this.
	funcs["toYaml"] = func(v interface{}) string {
		s, err := toYAML(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(s, "\n")
	}
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		m, err := parseYAML([]byte(s), "fromYaml")
		if err != nil {
			return map[string]interface{}{"Error": err.Error()}
		}
		return m
	}
	funcs["toJson"] = func(v interface{}) string {
		b, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(b)
	}
	funcs["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	// `helm template` has no cluster: lookup finds nothing.
	funcs["lookup"] = func(string, string, string, string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	root.Funcs(funcs)

	tdir := filepath.Join(chartDir, "templates")
	entries, err := os.ReadDir(tdir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			continue // this chart keeps its templates flat
		}
		text, err := os.ReadFile(filepath.Join(tdir, e.Name()))
		if err != nil {
			return err
		}
		name := path.Join(chartName, "templates", e.Name())
		if _, err := root.New(name).Parse(string(text)); err != nil {
			return err
		}
		names = append(names, name)
	}
	sort.Strings(names)

	top := map[string]interface{}{
		"Values": values,
		"Release": map[string]interface{}{"Name": release, "Namespace": namespace,
			"Service": "Helm", "IsInstall": true, "IsUpgrade": false, "Revision": 1},
		"Chart": map[string]interface{}{"Name": chartName, "Version": chart["version"],
			"AppVersion": chart["appVersion"]},
		"Capabilities": map[string]interface{}{
			"KubeVersion": map[string]interface{}{"Version": "v1.28.0", "Major": "1",
				"Minor": "28", "GitVersion": "v1.28.0"},
			"APIVersions": []string{"v1", "apps/v1", "batch/v1", "discovery.k8s.io/v1",
				"rbac.authorization.k8s.io/v1", "monitoring.coreos.com/v1"},
		},
	}

	var out []manifest
	for _, name := range names {
		// Partials define templates only; NOTES.txt is shown after install, not applied.
		if strings.HasPrefix(path.Base(name), "_") || path.Base(name) == "NOTES.txt" {
			continue
		}
		top["Template"] = map[string]interface{}{"Name": name,
			"BasePath": path.Join(chartName, "templates")}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, top); err != nil {
			return err
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		for _, doc := range splitDocs(text) {
			out = append(out, manifest{source: name, body: doc, rank: kindRank(doc)})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].rank < out[j].rank })
	for _, m := range out {
		fmt.Printf("---\n# Source: %s\n%s\n", m.source, m.body)
	}
	return nil
}

// splitDocs cuts a rendered file at "---" lines and drops the documents that are only
// whitespace, as Helm does (a template switched off by a value renders to nothing).
func splitDocs(text string) []string {
	var docs []string
	var cur []string
	flush := func() {
		body := strings.Trim(strings.Join(cur, "\n"), "\n")
		cur = nil
		if strings.TrimSpace(body) != "" {
			docs = append(docs, body)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.TrimRight(line, " \t") == "---" {
			flush()
			continue
		}
		cur = append(cur, line)
	}
	flush()
	return docs
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "ns-helm-render: %v\n", err)
		os.Exit(1)
	}
}
