package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Version is keyhole's version, sent in the User-Agent. The CLI sets it from
// its build information.
var Version = "dev"

// UserAgent is the User-Agent keyhole sends to the API server; audit logs
// show it, so cluster operators can tell keyhole's reads from others.
func UserAgent() string { return "keyhole/" + Version }

// Listing twenty resources with pagination overruns client-go's defaults of
// 5 QPS / 10 burst at once, and the throttling then logs through klog.
const (
	defaultQPS   = 50
	defaultBurst = 100
)

// homeKubeconfig is ~/.kube/config. client-go computes it once at start-up;
// tests point it elsewhere.
var homeKubeconfig = clientcmd.RecommendedHomeFile

// RESTConfig builds a client configuration from a kubeconfig file and
// context. With both empty it follows kubectl: the files in $KUBECONFIG,
// else ~/.kube/config, else the in-cluster configuration when running in a
// pod. Every error is one line that names the file or context at fault.
func RESTConfig(kubeconfig, context string) (*rest.Config, error) {
	rules := &clientcmd.ClientConfigLoadingRules{
		// No MigrationRules: the default ones copy ~/.kube/.kubeconfig
		// into ~/.kube/config, and an auditor must not write there.
		Warner: func(error) {},
	}
	var files []string
	if kubeconfig != "" {
		if _, err := os.Stat(kubeconfig); err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %s", kubeconfig, fileReason(err))
		}
		rules.ExplicitPath = kubeconfig
		files = []string{kubeconfig}
	} else {
		env := os.Getenv(clientcmd.RecommendedConfigPathEnvVar)
		if env != "" {
			rules.Precedence = filepath.SplitList(env)
		} else {
			rules.Precedence = []string{homeKubeconfig}
		}
		for _, f := range rules.Precedence {
			if f == "" {
				continue
			}
			if _, err := os.Stat(f); err == nil {
				files = append(files, f)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("kubeconfig %s: %s", f, fileReason(err))
			}
		}
		if len(files) == 0 {
			if context == "" {
				cfg, err := rest.InClusterConfig()
				if err == nil {
					tune(cfg)
					return cfg, nil
				}
				if !errors.Is(err, rest.ErrNotInCluster) {
					return nil, fmt.Errorf("running in a pod, but its service account cannot be used: %s", OneLine(err.Error()))
				}
			}
			if env != "" {
				return nil, fmt.Errorf("no kubeconfig: KUBECONFIG names %s, which does not exist", env)
			}
			return nil, errors.New("no kubeconfig: pass --kubeconfig, set KUBECONFIG, or run in a pod")
		}
	}

	// Load each file alone first, so that a broken one is named.
	for _, f := range files {
		if _, err := clientcmd.LoadFromFile(f); err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %s", f, kubeconfigReason(err))
		}
	}
	raw, err := rules.Load()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %s", strings.Join(files, ", "), kubeconfigReason(err))
	}
	where := strings.Join(files, ", ")
	name := context
	if name == "" {
		name = raw.CurrentContext
	}
	if name == "" {
		if len(raw.Contexts) == 0 {
			return nil, fmt.Errorf("kubeconfig %s defines no contexts", where)
		}
		return nil, fmt.Errorf("kubeconfig %s has no current-context: pass --context", where)
	}
	kctx, ok := raw.Contexts[name]
	if !ok {
		return nil, fmt.Errorf("context %q not found in kubeconfig %s", name, where)
	}
	if _, ok := raw.Clusters[kctx.Cluster]; !ok {
		return nil, fmt.Errorf("context %q in kubeconfig %s names cluster %q, which is not defined there", name, where, kctx.Cluster)
	}
	if _, ok := raw.AuthInfos[kctx.AuthInfo]; kctx.AuthInfo != "" && !ok {
		return nil, fmt.Errorf("context %q in kubeconfig %s names user %q, which is not defined there", name, where, kctx.AuthInfo)
	}
	cfg, err := clientcmd.NewNonInteractiveClientConfig(*raw, name, &clientcmd.ConfigOverrides{}, rules).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s, context %q: %s", where, name, kubeconfigReason(err))
	}
	tune(cfg)
	return cfg, nil
}

func tune(cfg *rest.Config) {
	cfg.UserAgent = UserAgent()
	cfg.QPS = defaultQPS
	cfg.Burst = defaultBurst
}

func fileReason(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return OneLine(pe.Err.Error())
	}
	return OneLine(err.Error())
}

// quoted matches the `…` snippets YAML errors quote from the input; in a
// kubeconfig that input may be a token or a key.
var quoted = regexp.MustCompile("`[^`]*`")

func kubeconfigReason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fileReason(err)
	}
	msg := quoted.ReplaceAllString(err.Error(), "`…`")
	msg = strings.TrimPrefix(msg, "invalid configuration: ")
	if strings.Contains(msg, "couldn't get version/kind") {
		return "not a valid kubeconfig: expected a YAML mapping with apiVersion and kind"
	}
	if i := strings.Index(msg, " into Go "); i >= 0 {
		msg = msg[:i]
	}
	if strings.Contains(msg, "yaml:") || strings.Contains(msg, "json") || strings.Contains(msg, "unmarshal") {
		return "not a valid kubeconfig: " + OneLine(msg)
	}
	return OneLine(msg)
}
