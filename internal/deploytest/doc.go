// Package deploytest proves the shipped manifests against the real control
// plane. Its tests render deploy/kustomize with kubectl's built-in kustomize
// and the Helm chart deploy/helm/keyhole with helm (built by build-helm.sh,
// `make helm`; the chart's schema, RBAC, alerts and documented values are
// held to the kustomize base and the code), have kube-apiserver validate
// every rendering with a server-side dry run (Pod Security admission
// included), hold the ClusterRole to the resources the daemon's informers
// watch, and run keyhole serve under exactly the shipped RBAC, as the
// shipped ServiceAccount, requiring no forbidden resource. It also holds the
// monitoring artefacts to the code: the alert rules (dashboards/alerts.yaml)
// pass promtool's checks and unit tests and equal the shipped
// PrometheusRule, the ServiceMonitor matches the Service, and every query of
// the Grafana dashboard parses and uses only metrics of internal/metrics's
// Catalog, each of which a scrape of keyhole serve, with every source on,
// holds; and a real Prometheus, scraping keyhole serve with those rules,
// raises the critical alert when a Secret becomes readable by everyone.
// promtool and the Prometheus server come from build-prometheus.sh (`make
// promtool`, `make prometheus`). The package has no code of its own: it
// exists for its tests.
package deploytest
