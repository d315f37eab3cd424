// Validates rendered Kubernetes manifests offline (no cluster runs in CI): every document is
// decoded strictly into the Kubernetes API's own Go types, so an unknown or misspelt field, a
// wrong type or a kind this project does not expect fails the build. Then the project's own rules
// are checked: images pinned, probes and resource requests on every container, non-root and
// read-only containers, and no credential written into a manifest (secrets come from Secrets).
//
//	kustomize build deploy/kubernetes/overlays/production | rdt-validate-k8s
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

func main() {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		appsv1.AddToScheme, autoscalingv2.AddToScheme, corev1.AddToScheme, networkingv1.AddToScheme, policyv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			fail("scheme: %v", err)
		}
	}
	decoder := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()

	reader := utilyaml.NewYAMLReader(bufio.NewReader(os.Stdin))
	var problems []string
	counts := map[string]int{}
	for {
		doc, err := reader.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			fail("reading YAML: %v", err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, gvk, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			problems = append(problems, fmt.Sprintf("invalid document: %v", err))
			continue
		}
		counts[gvk.Kind]++
		problems = append(problems, rules(obj)...)
	}
	if len(counts) == 0 {
		fail("no manifests on standard input")
	}
	kinds := make([]string, 0, len(counts))
	for kind := range counts {
		kinds = append(kinds, kind)
	}
	sort.Strings(kinds)
	for _, kind := range kinds {
		fmt.Printf("  %d %s\n", counts[kind], kind)
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "error:", p)
		}
		os.Exit(1)
	}
	fmt.Println("manifests valid")
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "error: "+format+"\n", args...)
	os.Exit(1)
}

var pinned = regexp.MustCompile(`:[0-9][^:@]*$|@sha256:[0-9a-f]{64}$`)

// Env names whose value is a credential: it must come from a Secret, never be written inline.
var secretEnv = regexp.MustCompile(`(PASSWORD|SECRET|_KEY|TOKEN|REDIS_URL|MONGODB_URL)$`)

func rules(obj runtime.Object) []string {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return podRules("Deployment "+o.Name, &o.Spec.Template.Spec)
	case *corev1.Secret:
		return []string{fmt.Sprintf("Secret %s: secrets are created by the operator (README), never kept in these manifests", o.Name)}
	}
	return nil
}

func podRules(where string, pod *corev1.PodSpec) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, where+": "+fmt.Sprintf(format, args...)) }
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		bad("automountServiceAccountToken must be false (no process talks to the Kubernetes API)")
	}
	for _, c := range pod.Containers {
		if !pinned.MatchString(c.Image) {
			bad("container %s: image %q must be pinned to a version or digest", c.Name, c.Image)
		}
		if c.ReadinessProbe == nil && c.LivenessProbe == nil {
			bad("container %s: needs a readiness or liveness probe", c.Name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			bad("container %s: needs cpu and memory requests and a memory limit", c.Name)
		}
		sc := c.SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			bad("container %s: must run as non-root, read-only, without privilege escalation", c.Name)
		}
		for _, e := range c.Env {
			if secretEnv.MatchString(e.Name) && e.Value != "" {
				bad("container %s: %s is a credential and must come from a Secret (valueFrom.secretKeyRef)", c.Name, e.Name)
			}
			if strings.HasPrefix(e.Name, "RDT_FAULT_") {
				bad("container %s: %s is a test hook", c.Name, e.Name)
			}
		}
	}
	return out
}
