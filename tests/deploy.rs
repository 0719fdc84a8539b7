//! Checks of the deployment kit under `deploy/`: every file parses, the alert
//! rules and the dashboard only use metrics the service exports, the
//! Kubernetes, Compose, Docker and systemd set-ups keep the properties the
//! service relies on (one writer per journal, probes, non-root, a grace
//! period longer than the drain), and the configurations they hand the
//! service load and validate with the service's own loader.
//!
//! External linters run when installed: `promtool` (rules, rule unit tests,
//! Prometheus config, the dashboard's PromQL) and `hadolint`; with `CI=true`
//! a missing one fails the run, elsewhere it is a printed notice. `kubectl
//! kustomize` runs when kubectl is there and is never required.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use dnb_hubspot_bridge::config::{Settings, validate};
use dnb_hubspot_bridge::telemetry::Metrics;
use serde::Deserialize;
use serde_json::Value;

/// The development secret of `make run`, valid for `webhook.secrets`.
const TEST_WEBHOOK_SECRET: &str = "whsec_ZGV2ZWxvcG1lbnQtc2lnbmluZy1zZWNyZXQ=";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy(relative: &str) -> PathBuf {
    root().join("deploy").join(relative)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Every document of a YAML file (multi-document files too), empty ones left out.
fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = read(path);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| {
            Value::deserialize(document)
                .unwrap_or_else(|error| panic!("{} is not valid YAML: {error}", path.display()))
        })
        .filter(|document| !document.is_null())
        .collect()
}

fn yaml(path: &Path) -> Value {
    let mut documents = yaml_documents(path);
    assert_eq!(
        documents.len(),
        1,
        "{} should hold one YAML document",
        path.display()
    );
    documents.remove(0)
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&read(path))
        .unwrap_or_else(|error| panic!("{} is not valid JSON: {error}", path.display()))
}

/// Files under `dir`, recursively, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yml" | "yaml")
    )
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value}"))
}

fn array_at<'a>(value: &'a Value, pointer: &str) -> &'a Vec<Value> {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no list at {pointer} in {value}"))
}

// ---------------------------------------------------------------- metrics

/// Every metric the service exports with its kind, from the `# TYPE` lines
/// of a fresh registry (every metric is described at start-up).
fn exported_metrics() -> BTreeMap<String, String> {
    let text = Metrics::new().render();
    let metrics: BTreeMap<String, String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| {
            let mut words = rest.split_whitespace();
            Some((words.next()?.to_string(), words.next()?.to_string()))
        })
        .collect();
    assert!(
        metrics.len() >= 10,
        "too few # TYPE lines in the exposition:\n{text}"
    );
    metrics
}

/// Tokens `bridge_[a-z0-9_]+` that start a word (so `dnb_hubspot_bridge_x` is not one).
fn metric_tokens(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut tokens = BTreeSet::new();
    let mut from = 0;
    while let Some(offset) = text[from..].find("bridge_") {
        let start = from + offset;
        let mut end = start + "bridge_".len();
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase()
                || bytes[end].is_ascii_digit()
                || bytes[end] == b'_')
        {
            end += 1;
        }
        if start == 0 || !word(bytes[start - 1]) {
            let token = text[start..end].trim_end_matches('_');
            if token.len() > "bridge".len() {
                tokens.insert(token.to_string());
            }
        }
        from = end;
    }
    tokens
}

/// The exported metric a token refers to: itself, or the histogram whose
/// `_bucket`, `_sum` or `_count` series it is.
fn resolve_metric<'a>(token: &str, exported: &'a BTreeMap<String, String>) -> Option<&'a str> {
    if let Some((name, _)) = exported.get_key_value(token) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = token.strip_suffix(suffix)?;
        let (name, kind) = exported.get_key_value(base)?;
        (kind == "histogram" || kind == "summary").then_some(name.as_str())
    })
}

fn alert_rules() -> Vec<Value> {
    let rules = yaml(&deploy("prometheus/alerts.yml"));
    array_at(&rules, "/groups")
        .iter()
        .flat_map(|group| array_at(group, "/rules").clone())
        .collect()
}

fn dashboard() -> Value {
    json(&deploy("grafana/dashboard.json"))
}

/// The dashboard's panels, rows' nested panels included, rows left out.
fn dashboard_panels(dashboard: &Value) -> Vec<Value> {
    let mut panels = Vec::new();
    for panel in array_at(dashboard, "/panels") {
        if panel["type"] == "row" {
            if let Some(nested) = panel["panels"].as_array() {
                panels.extend(nested.iter().cloned());
            }
        } else {
            panels.push(panel.clone());
        }
    }
    panels
}

/// Every PromQL expression of the dashboard: panel targets and variable queries.
fn dashboard_expressions(dashboard: &Value) -> Vec<String> {
    let mut expressions: Vec<String> = dashboard_panels(dashboard)
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|target| target["expr"].as_str().map(str::to_string))
        .collect();
    for variable in array_at(dashboard, "/templating/list") {
        if let Some(query) = variable["definition"].as_str() {
            expressions.push(query.to_string());
        }
    }
    expressions
}

#[test]
fn metric_names_in_alerts_and_dashboard_are_ones_the_service_exports() {
    let exported = exported_metrics();
    let mut sources: Vec<(String, String)> = alert_rules()
        .iter()
        .map(|rule| (format!("alert {}", rule["alert"]), rule.to_string()))
        .collect();
    sources.extend(
        dashboard_expressions(&dashboard())
            .into_iter()
            .map(|expr| ("dashboard".to_string(), expr)),
    );
    sources.push((
        "alerts.test.yml".into(),
        read(&deploy("prometheus/alerts.test.yml")),
    ));
    let mut used = BTreeSet::new();
    let mut unknown = Vec::new();
    for (source, text) in &sources {
        for token in metric_tokens(text) {
            match resolve_metric(&token, &exported) {
                Some(name) => {
                    used.insert(name.to_string());
                }
                None => unknown.push(format!("{source}: {token}")),
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "metrics the service does not export (exported: {:?}):\n{}",
        exported.keys().collect::<Vec<_>>(),
        unknown.join("\n")
    );
    assert!(used.len() >= 10, "suspiciously few metrics found: {used:?}");
}

#[test]
fn every_exported_metric_is_on_the_dashboard() {
    let exported = exported_metrics();
    let mut shown = BTreeSet::new();
    for expr in dashboard_expressions(&dashboard()) {
        for token in metric_tokens(&expr) {
            if let Some(name) = resolve_metric(&token, &exported) {
                shown.insert(name.to_string());
            }
        }
    }
    let missing: Vec<_> = exported
        .keys()
        .filter(|name| !shown.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics with no panel in deploy/grafana/dashboard.json: {missing:?}"
    );
}

#[test]
fn metric_token_scanner_finds_whole_names_only() {
    let tokens = metric_tokens(
        "rate(bridge_processing_seconds_bucket{le=\"1\"}[5m]) dnb_hubspot_bridge_x \
         dnb-hubspot-bridge bridge_queue_depth>0",
    );
    assert_eq!(
        tokens,
        BTreeSet::from([
            "bridge_processing_seconds_bucket".to_string(),
            "bridge_queue_depth".to_string()
        ])
    );
    let exported = BTreeMap::from([
        (
            "bridge_processing_seconds".to_string(),
            "histogram".to_string(),
        ),
        ("bridge_queue_depth".to_string(), "gauge".to_string()),
    ]);
    assert_eq!(
        resolve_metric("bridge_processing_seconds_count", &exported),
        Some("bridge_processing_seconds")
    );
    assert_eq!(resolve_metric("bridge_queue_depth_count", &exported), None);
}

// ---------------------------------------------------------------- parsing

#[test]
fn every_yaml_and_json_file_under_deploy_parses() {
    let files = files_under(&root().join("deploy"));
    let mut yaml_files = 0;
    for path in &files {
        if is_yaml(path) {
            assert!(
                !yaml_documents(path).is_empty(),
                "{} holds no YAML document",
                path.display()
            );
            yaml_files += 1;
        } else if path.extension().and_then(|e| e.to_str()) == Some("json") {
            json(path);
        }
    }
    for expected in [
        "Dockerfile",
        "docker-compose.yml",
        ".env.example",
        "prometheus/prometheus.yml",
        "prometheus/alerts.yml",
        "prometheus/alerts.test.yml",
        "grafana/dashboard.json",
        "grafana/provisioning/datasources/prometheus.yml",
        "grafana/provisioning/dashboards/dnb-hubspot-bridge.yml",
        "kubernetes/kustomization.yaml",
        "kubernetes/deployment.yaml",
        "kubernetes/README.md",
        "kubernetes/postgres/kustomization.yaml",
        "kubernetes/postgres/deployment.yaml",
        "kubernetes/postgres/pdb.yaml",
        "kubernetes/postgres/migrate-journal-job.yaml",
        "nginx/bridge.conf",
        "systemd/dnb-hubspot-bridge.service",
    ] {
        assert!(
            files.contains(&deploy(expected)),
            "deploy/{expected} is missing"
        );
    }
    assert!(
        yaml_files >= 10,
        "only {yaml_files} YAML files under deploy/"
    );
    let ignored = read(&root().join(".dockerignore"));
    for pattern in ["target/", "data/"] {
        assert!(
            ignored.lines().any(|line| line.trim() == pattern),
            ".dockerignore should exclude {pattern}"
        );
    }
}

#[test]
fn dashboard_is_well_formed() {
    let dashboard = dashboard();
    assert!(dashboard["schemaVersion"].as_u64().unwrap_or(0) >= 36);
    assert!(!str_at(&dashboard, "/uid").is_empty());
    let variables = array_at(&dashboard, "/templating/list");
    assert!(
        variables.iter().any(|v| v["name"] == "DS_PROMETHEUS"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "the dashboard needs a DS_PROMETHEUS data source variable"
    );
    let mut ids = BTreeSet::new();
    let mut cells: Vec<(String, u64, u64, u64, u64)> = Vec::new();
    for panel in array_at(&dashboard, "/panels") {
        let title = str_at(panel, "/title").to_string();
        assert!(
            ids.insert(panel["id"].as_u64().expect("panel id")),
            "{title}: duplicate id"
        );
        let grid = |key: &str| {
            panel["gridPos"][key]
                .as_u64()
                .unwrap_or_else(|| panic!("{title}: gridPos.{key}"))
        };
        let (x, y, w, h) = (grid("x"), grid("y"), grid("w"), grid("h"));
        assert!(x + w <= 24, "{title}: wider than the grid");
        for (other, ox, oy, ow, oh) in &cells {
            let overlap = x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h;
            assert!(!overlap, "panels {title:?} and {other:?} overlap");
        }
        cells.push((title.clone(), x, y, w, h));
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel.pointer("/datasource/uid").and_then(Value::as_str),
            Some("${DS_PROMETHEUS}"),
            "{title}: data source"
        );
        let targets = array_at(panel, "/targets");
        assert!(!targets.is_empty(), "{title}: no query");
        let mut refs = BTreeSet::new();
        for target in targets {
            assert!(
                !str_at(target, "/expr").trim().is_empty(),
                "{title}: empty query"
            );
            assert!(
                refs.insert(str_at(target, "/refId").to_string()),
                "{title}: duplicate refId"
            );
            assert_eq!(
                target.pointer("/datasource/uid").and_then(Value::as_str),
                Some("${DS_PROMETHEUS}")
            );
        }
    }
}

#[test]
fn grafana_provisioning_points_at_the_dashboard_and_prometheus() {
    let datasources = yaml(&deploy("grafana/provisioning/datasources/prometheus.yml"));
    let source = &array_at(&datasources, "/datasources")[0];
    assert_eq!(str_at(source, "/type"), "prometheus");
    let compose = yaml(&deploy("docker-compose.yml"));
    let url = str_at(source, "/url");
    assert!(
        compose["services"]
            .as_object()
            .unwrap()
            .keys()
            .any(|service| url.starts_with(&format!("http://{service}:"))),
        "{url} names no compose service"
    );
    let providers = yaml(&deploy(
        "grafana/provisioning/dashboards/dnb-hubspot-bridge.yml",
    ));
    let folder = str_at(&array_at(&providers, "/providers")[0], "/options/path");
    let mounts = array_at(&compose, "/services/grafana/volumes");
    assert!(
        mounts.iter().filter_map(Value::as_str).any(|mount| {
            mount.starts_with("./grafana/dashboard.json:") && mount.contains(&format!(":{folder}/"))
        }),
        "compose must mount grafana/dashboard.json under {folder}"
    );
}

// ---------------------------------------------------------------- alerts

#[test]
fn every_alert_has_a_severity_summary_description_and_runbook_and_a_firing_test() {
    let rules = alert_rules();
    assert!(
        rules.len() >= 9,
        "expected the full set of alerts, found {}",
        rules.len()
    );
    let tests = yaml(&deploy("prometheus/alerts.test.yml"));
    let fired: BTreeSet<String> = array_at(&tests, "/tests")
        .iter()
        .flat_map(|test| {
            test["alert_rule_test"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|case| {
            case["exp_alerts"]
                .as_array()
                .is_some_and(|alerts| !alerts.is_empty())
        })
        .filter_map(|case| case["alertname"].as_str().map(str::to_string))
        .collect();
    let mut names = BTreeSet::new();
    for rule in &rules {
        let name = str_at(rule, "/alert");
        assert!(names.insert(name), "{name} is defined twice");
        assert!(!str_at(rule, "/expr").trim().is_empty(), "{name}: no expr");
        let severity = str_at(rule, "/labels/severity");
        assert!(
            ["critical", "warning", "info"].contains(&severity),
            "{name}: severity {severity}"
        );
        for annotation in ["summary", "description", "runbook"] {
            assert!(
                !str_at(rule, &format!("/annotations/{annotation}"))
                    .trim()
                    .is_empty(),
                "{name}: empty {annotation}"
            );
        }
        assert!(
            fired.contains(name),
            "{name} has no firing case in alerts.test.yml"
        );
    }
    let expressions: String = rules.iter().map(|rule| str_at(rule, "/expr")).collect();
    for needed in [
        "outcome=\"dead\"",
        "outcome=\"skipped\"",
        "bridge_backlog_oldest_age_seconds",
        "bridge_queue_depth",
        "bridge_hubspot_paused",
        "bridge_hubspot_api_errors_total",
        "status=\"429\"",
        "bridge_notifications_received_total",
        "bridge_dnb_last_pull_success_timestamp_seconds",
        "up{",
    ] {
        assert!(expressions.contains(needed), "no alert uses {needed}");
    }
}

#[test]
fn prometheus_scrapes_the_bridge_and_loads_the_rules() {
    let config = yaml(&deploy("prometheus/prometheus.yml"));
    for file in array_at(&config, "/rule_files") {
        let file = file.as_str().unwrap();
        assert!(
            deploy("prometheus").join(file).is_file(),
            "rule file {file} is missing"
        );
    }
    let job = array_at(&config, "/scrape_configs")
        .iter()
        .find(|job| job["job_name"] == "dnb-hubspot-bridge")
        .expect("a dnb-hubspot-bridge scrape job (the alerts select it)");
    assert_eq!(
        job["metrics_path"].as_str().unwrap_or("/metrics"),
        "/metrics"
    );
    let target = str_at(job, "/static_configs/0/targets/0");
    assert_eq!(target, "bridge:8080", "the compose service and its port");
    assert!(read(&deploy("prometheus/alerts.yml")).contains("job=\"dnb-hubspot-bridge\""));
}

// ---------------------------------------------------------------- Kubernetes

/// One variant of the Kubernetes kit: a folder with its kustomization.
struct Kubernetes {
    dir: PathBuf,
    objects: Vec<Value>,
    kustomization: Value,
    secret_template: Value,
}

/// The SQLite variant: one replica on a ReadWriteOnce claim.
fn kubernetes() -> Kubernetes {
    kubernetes_in(&deploy("kubernetes"), &[])
}

/// The Postgres variant: three replicas, no volume. The migration Job is applied by hand.
fn kubernetes_postgres() -> Kubernetes {
    kubernetes_in(
        &deploy("kubernetes/postgres"),
        &["migrate-journal-job.yaml"],
    )
}

/// YAML files directly in `dir` (not in its sub-folders), sorted.
fn yaml_files_in(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file() && is_yaml(path))
        .collect();
    found.sort();
    found
}

/// The objects `dir`'s kustomization lists; every other YAML file of the folder must be
/// listed too, except the config, the Secret template and `unlisted`.
fn kubernetes_in(dir: &Path, unlisted: &[&str]) -> Kubernetes {
    let kustomization = yaml(&dir.join("kustomization.yaml"));
    let mut objects = Vec::new();
    for resource in array_at(&kustomization, "/resources") {
        let path = dir.join(resource.as_str().unwrap());
        assert!(
            path.is_file(),
            "kustomization lists missing {}",
            path.display()
        );
        objects.extend(yaml_documents(&path));
    }
    for path in yaml_files_in(dir) {
        let name = path.file_name().unwrap().to_str().unwrap();
        if !["kustomization.yaml", "config.yaml", "secret.example.yaml"].contains(&name)
            && !unlisted.contains(&name)
        {
            assert!(
                array_at(&kustomization, "/resources")
                    .iter()
                    .any(|r| r == name),
                "{name} is not listed in {}/kustomization.yaml",
                dir.display()
            );
        }
    }
    for name in unlisted {
        assert!(
            !array_at(&kustomization, "/resources")
                .iter()
                .any(|r| r == *name),
            "{name} must not be applied by `kubectl apply -k`"
        );
    }
    let secret_template = yaml(&dir.join("secret.example.yaml"));
    Kubernetes {
        dir: dir.to_path_buf(),
        objects,
        kustomization,
        secret_template,
    }
}

impl Kubernetes {
    fn kind(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    fn workload(&self) -> &Value {
        let workloads: Vec<&Value> = self
            .objects
            .iter()
            .filter(|o| o["kind"] == "Deployment" || o["kind"] == "StatefulSet")
            .collect();
        assert_eq!(workloads.len(), 1, "one Deployment or StatefulSet");
        workloads[0]
    }

    fn pod(&self) -> &Value {
        &self.workload()["spec"]["template"]["spec"]
    }

    fn container(&self) -> &Value {
        let containers = array_at(self.workload(), "/spec/template/spec/containers");
        assert_eq!(containers.len(), 1, "one container");
        &containers[0]
    }

    /// Literal env values of the container.
    fn env(&self) -> BTreeMap<String, String> {
        array_at(self.container(), "/env")
            .iter()
            .filter_map(|var| {
                Some((
                    var["name"].as_str()?.to_string(),
                    var["value"].as_str()?.to_string(),
                ))
            })
            .collect()
    }

    /// Whether a selector's labels all match the pod template's.
    fn selects_pod(&self, selector: &Value) -> bool {
        let labels = self.workload()["spec"]["template"]["metadata"]["labels"]
            .as_object()
            .unwrap();
        selector
            .as_object()
            .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels.get(k) == Some(v)))
    }
}

/// What both variants guarantee: the http port, probes, a locked-down non-root container,
/// resources, a grace period longer than the drain, scrape annotations, a Service, the
/// generated ConfigMap and secrets that the template lists. Returns the pod's settings.
fn assert_pod_is_probed_locked_down_and_reachable(k8s: &Kubernetes) -> Settings {
    let spec = &k8s.workload()["spec"];
    let pod = k8s.pod();
    let container = k8s.container();

    let port = array_at(container, "/ports")
        .iter()
        .find(|p| p["name"] == "http")
        .expect("a port named http");
    assert_eq!(port["containerPort"].as_u64(), Some(8080));
    for (probe, path) in [("livenessProbe", "/health"), ("readinessProbe", "/ready")] {
        assert_eq!(
            container
                .pointer(&format!("/{probe}/httpGet/path"))
                .and_then(Value::as_str),
            Some(path),
            "{probe}"
        );
        let probe_port = &container[probe]["httpGet"]["port"];
        assert!(probe_port == "http" || probe_port == 8080, "{probe} port");
    }
    assert_container_is_locked_down(pod, container);

    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds");
    let settings = kubernetes_settings(k8s);
    assert!(
        grace > settings.server.shutdown_timeout_secs && grace > 25,
        "terminationGracePeriodSeconds {grace} must exceed the drain of {} s",
        settings.server.shutdown_timeout_secs
    );

    let annotations = &spec["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], "8080");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");

    let services = k8s.kind("Service");
    assert!(
        services
            .iter()
            .any(|s| k8s.selects_pod(&s["spec"]["selector"])
                && array_at(s, "/spec/ports")
                    .iter()
                    .any(|p| p["targetPort"] == "http" || p["targetPort"] == 8080)),
        "a Service selecting the pod's http port"
    );
    let generated = array_at(&k8s.kustomization, "/configMapGenerator");
    assert!(
        array_at(pod, "/volumes").iter().any(|v| generated
            .iter()
            .any(|g| g["name"] == v["configMap"]["name"])),
        "the config volume uses the generated ConfigMap"
    );
    assert!(
        array_at(&k8s.kustomization, "/images")
            .iter()
            .any(|image| image["name"] == str_at(container, "/image")
                && image["newTag"].as_str().is_some_and(|tag| tag != "latest")),
        "the image is pinned to a tag by the kustomization"
    );
    assert_secrets_are_in_the_template(container, &k8s.secret_template);
    settings
}

/// Non-root, read-only root filesystem, no privilege escalation, no capabilities,
/// RuntimeDefault seccomp, memory requests and limits.
fn assert_container_is_locked_down(pod: &Value, container: &Value) {
    let pod_security = &pod["securityContext"];
    let security = &container["securityContext"];
    let either = |key: &str| {
        security
            .get(key)
            .filter(|v| !v.is_null())
            .or_else(|| pod_security.get(key))
            .cloned()
    };
    assert_eq!(either("runAsNonRoot"), Some(Value::Bool(true)));
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert!(
        array_at(security, "/capabilities/drop")
            .iter()
            .any(|c| c == "ALL"),
        "drop ALL capabilities"
    );
    assert_eq!(
        either("seccompProfile")
            .and_then(|p| p["type"].as_str().map(str::to_string))
            .as_deref(),
        Some("RuntimeDefault")
    );
    if let Some(user) = either("runAsUser") {
        assert_ne!(user.as_u64(), Some(0), "runAsUser 0");
    }
    assert_eq!(pod["automountServiceAccountToken"], false);
    for kind in ["requests", "limits"] {
        assert!(
            container["resources"][kind]["memory"].is_string(),
            "resources.{kind}.memory"
        );
    }
}

/// Every secret the container reads is a key of the Secret template.
fn assert_secrets_are_in_the_template(container: &Value, template: &Value) {
    let secret_name = str_at(template, "/metadata/name");
    for var in array_at(container, "/env") {
        if let Some(reference) = var.pointer("/valueFrom/secretKeyRef") {
            assert_eq!(str_at(reference, "/name"), secret_name);
            let key = str_at(reference, "/key");
            assert!(
                template["stringData"].get(key).is_some(),
                "the Secret template lacks {key}"
            );
        }
    }
}

/// The names the env of `container` reads from a Secret, with the key each one reads.
fn secret_env(container: &Value) -> BTreeMap<String, String> {
    array_at(container, "/env")
        .iter()
        .filter_map(|var| {
            let key = var.pointer("/valueFrom/secretKeyRef/key")?.as_str()?;
            Some((str_at(var, "/name").to_string(), key.to_string()))
        })
        .collect()
}

#[test]
fn kubernetes_runs_one_writer_with_probes_and_a_locked_down_container() {
    let k8s = kubernetes();
    let workload = k8s.workload();
    let spec = &workload["spec"];
    assert_eq!(spec["replicas"].as_u64(), Some(1), "SQLite: one replica");
    if workload["kind"] == "Deployment" {
        assert_eq!(
            str_at(spec, "/strategy/type"),
            "Recreate",
            "a rolling update would deadlock on the ReadWriteOnce volume"
        );
    }
    let settings = assert_pod_is_probed_locked_down_and_reachable(&k8s);
    let pod = k8s.pod();
    let container = k8s.container();

    // The journal lives on a ReadWriteOnce claim mounted where storage.url points.
    let journal = settings
        .storage
        .url
        .strip_prefix("sqlite://")
        .expect("sqlite storage url")
        .to_string();
    let journal_dir = Path::new(&journal)
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let mount = array_at(container, "/volumeMounts")
        .iter()
        .find(|m| m["mountPath"] == journal_dir.as_str())
        .unwrap_or_else(|| panic!("nothing mounted at the journal directory {journal_dir}"));
    let volume = array_at(pod, "/volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the journal volume");
    let claim = str_at(volume, "/persistentVolumeClaim/claimName");
    let pvc = k8s
        .kind("PersistentVolumeClaim")
        .into_iter()
        .find(|p| p["metadata"]["name"] == claim)
        .expect("the journal's PersistentVolumeClaim");
    assert_eq!(
        pvc["spec"]["accessModes"],
        serde_json::json!(["ReadWriteOnce"]),
        "SQLite WAL breaks on shared (ReadWriteMany/NFS) volumes"
    );
    assert!(read(&deploy("kubernetes/pvc.yaml")).contains("NFS"));

    let budgets = k8s.kind("PodDisruptionBudget");
    assert!(
        budgets.iter().any(|b| b["spec"]["maxUnavailable"] == 1
            && k8s.selects_pod(&b["spec"]["selector"]["matchLabels"])),
        "a PodDisruptionBudget with maxUnavailable: 1"
    );
    assert!(read(&deploy("kubernetes/README.md")).contains("postgres/"));
}

#[test]
fn kubernetes_postgres_runs_three_rolling_replicas_on_the_secret_url_without_a_volume() {
    let k8s = kubernetes_postgres();
    let workload = k8s.workload();
    assert_eq!(workload["kind"], "Deployment");
    let spec = &workload["spec"];
    assert_eq!(spec["replicas"].as_u64(), Some(3), "three replicas");
    assert_eq!(str_at(spec, "/strategy/type"), "RollingUpdate");
    assert_eq!(
        spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0,
        "a new pod is ready before an old one stops"
    );
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxSurge"], 1);
    let settings = assert_pod_is_probed_locked_down_and_reachable(&k8s);
    assert_eq!(settings.server.bind, "0.0.0.0:8080");

    // The journal URL comes from the Secret, under the name that overrides the image's
    // BRIDGE__STORAGE__URL, and the template's example is a Postgres URL.
    let container = k8s.container();
    let from_secret = secret_env(container);
    let key = from_secret
        .get("BRIDGE__STORAGE__URL")
        .expect("BRIDGE__STORAGE__URL from a secretKeyRef");
    assert!(
        !k8s.env().contains_key("BRIDGE__STORAGE__URL"),
        "the journal URL (with its password) is not written in the manifest"
    );
    let example = str_at(&k8s.secret_template, &format!("/stringData/{key}"));
    assert!(
        example.starts_with("postgres://") && example.contains("sslmode=require"),
        "the template's {key} is a postgres:// URL with TLS: {example}"
    );
    assert!(
        settings.storage.url.starts_with("postgres://"),
        "the pod runs on {}",
        settings.storage.url
    );

    // A short lease: a dead replica's claims come back to the others soon.
    assert!(
        (5..=60).contains(&settings.workers.lease_secs),
        "workers.lease_secs {} in the Postgres deploy",
        settings.workers.lease_secs
    );

    // No volume for the journal, no claim at all.
    assert!(k8s.kind("PersistentVolumeClaim").is_empty(), "no PVC");
    let pod = k8s.pod();
    for volume in array_at(pod, "/volumes") {
        assert!(
            volume["persistentVolumeClaim"].is_null() && volume["hostPath"].is_null(),
            "a volume that would hold a journal: {volume}"
        );
    }
    assert!(
        array_at(container, "/volumeMounts")
            .iter()
            .all(|m| m["mountPath"] != "/var/lib/bridge"),
        "nothing mounted at the SQLite journal's directory"
    );

    // Two pods always serve: a drain never takes the second one.
    let budgets = k8s.kind("PodDisruptionBudget");
    assert_eq!(budgets.len(), 1);
    let budget = &budgets[0]["spec"];
    assert_eq!(budget["minAvailable"], 2);
    assert!(budget["maxUnavailable"].is_null());
    assert!(k8s.selects_pod(&budget["selector"]["matchLabels"]));

    // Replicas spread over nodes.
    assert!(
        array_at(pod, "/topologySpreadConstraints")
            .iter()
            .any(|c| c["topologyKey"] == "kubernetes.io/hostname"
                && k8s.selects_pod(&c["labelSelector"]["matchLabels"])),
        "pods spread over nodes"
    );
}

#[test]
fn kubernetes_variants_run_the_same_container_apart_from_the_journal() {
    let sqlite = kubernetes();
    let postgres = kubernetes_postgres();
    let (a, b) = (sqlite.container(), postgres.container());
    for key in [
        "name",
        "image",
        "args",
        "ports",
        "startupProbe",
        "livenessProbe",
        "readinessProbe",
        "resources",
        "securityContext",
    ] {
        assert_eq!(a[key], b[key], "containers differ in {key}");
    }
    for pointer in [
        "/spec/template/metadata/labels",
        "/spec/template/metadata/annotations",
        "/spec/template/spec/terminationGracePeriodSeconds",
        "/spec/template/spec/automountServiceAccountToken",
        "/spec/template/spec/enableServiceLinks",
        "/spec/selector",
        "/metadata/name",
    ] {
        assert_eq!(
            sqlite.workload().pointer(pointer),
            postgres.workload().pointer(pointer),
            "Deployments differ at {pointer}"
        );
    }
    assert_eq!(
        sqlite.kind("Service")[0]["spec"],
        postgres.kind("Service")[0]["spec"]
    );
    // The same environment, except where the journal is and how long a lease lasts.
    let journal =
        |name: &str| name.starts_with("BRIDGE__STORAGE__") || name == "BRIDGE__WORKERS__LEASE_SECS";
    let plain = |k8s: &Kubernetes| -> BTreeMap<String, String> {
        k8s.env()
            .into_iter()
            .filter(|(name, _)| !journal(name))
            .collect()
    };
    assert_eq!(plain(&sqlite), plain(&postgres));
    let secrets = |k8s: &Kubernetes| -> BTreeMap<String, String> {
        secret_env(k8s.container())
            .into_iter()
            .filter(|(name, _)| !journal(name))
            .collect()
    };
    assert_eq!(secrets(&sqlite), secrets(&postgres));
    assert_eq!(
        sqlite.secret_template["metadata"],
        postgres.secret_template["metadata"]
    );
    for key in sqlite.secret_template["stringData"]
        .as_object()
        .unwrap()
        .keys()
    {
        assert!(
            postgres.secret_template["stringData"].get(key).is_some(),
            "postgres/secret.example.yaml lacks {key}"
        );
    }
    assert_eq!(
        sqlite.kustomization["images"], postgres.kustomization["images"],
        "both variants run the same image"
    );
}

#[test]
fn kubernetes_migration_job_copies_the_sqlite_claim_into_the_secret_url() {
    let sqlite = kubernetes();
    let postgres = kubernetes_postgres();
    let job = yaml(&deploy("kubernetes/postgres/migrate-journal-job.yaml"));
    assert_eq!(job["kind"], "Job");
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let containers = array_at(pod, "/containers");
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    assert_container_is_locked_down(pod, container);
    assert!(
        str_at(container, "/image").starts_with("dnb-hubspot-bridge:"),
        "the bridge's image, with a tag"
    );

    let args: Vec<&str> = array_at(container, "/args")
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args.first(), Some(&"migrate-journal"));
    let after = |flag: &str| {
        let at = args
            .iter()
            .position(|a| *a == flag)
            .unwrap_or_else(|| panic!("no {flag} in {args:?}"));
        args[at + 1]
    };
    // From the SQLite variant's journal, on its claim, mounted where the URL points.
    let sqlite_url = kubernetes_settings(&sqlite).storage.url;
    assert_eq!(after("--from"), sqlite_url);
    let claim = str_at(
        sqlite
            .kind("PersistentVolumeClaim")
            .first()
            .expect("the SQLite claim"),
        "/metadata/name",
    );
    let volume = array_at(pod, "/volumes")
        .iter()
        .find(|v| v["persistentVolumeClaim"]["claimName"] == claim)
        .expect("the Job mounts the SQLite journal's claim");
    let journal_dir = Path::new(sqlite_url.strip_prefix("sqlite://").unwrap())
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        array_at(container, "/volumeMounts")
            .iter()
            .any(|m| m["name"] == volume["name"] && m["mountPath"] == journal_dir.as_str()),
        "the claim is mounted at {journal_dir}"
    );
    // To the URL the replicas use, from the same Secret key.
    let to = after("--to");
    let variable = to
        .strip_prefix("$(")
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("--to {to} must come from the Secret, not the file"));
    let job_secrets = secret_env(container);
    let replica_secrets = secret_env(postgres.container());
    assert_eq!(
        job_secrets.get(variable),
        replica_secrets.get("BRIDGE__STORAGE__URL"),
        "the Job writes where the replicas read"
    );
    assert_secrets_are_in_the_template(container, &postgres.secret_template);
    assert!(read(&deploy("kubernetes/README.md")).contains("migrate-journal-job.yaml"));
}

/// The settings the pod would run with: the ConfigMap's config.yaml, the
/// container's env (secret references get test values) and `BRIDGE__` overrides.
fn kubernetes_settings(k8s: &Kubernetes) -> Settings {
    let mut variables: BTreeMap<String, String> = k8s.env();
    for (name, key) in secret_env(k8s.container()) {
        let value = match key.as_str() {
            "BRIDGE_WEBHOOK_SECRET" => TEST_WEBHOOK_SECRET,
            "BRIDGE_STORAGE_URL" => "postgres://bridge:test@postgres.test:5432/bridge",
            _ => "test-token",
        };
        variables.insert(name, value.to_string());
    }
    load_settings(&k8s.dir.join("config.yaml"), &variables)
}

/// Loads `path` as the service would under `variables` and asserts it validates.
fn load_settings(path: &Path, variables: &BTreeMap<String, String>) -> Settings {
    let mut overrides = config::Map::new();
    for (name, value) in variables {
        if name.starts_with("BRIDGE__") {
            overrides.insert(name.clone(), value.clone());
        }
    }
    let lookup = |name: &str| variables.get(name).cloned();
    let settings = Settings::load_with(path, &lookup, Some(overrides))
        .unwrap_or_else(|problems| panic!("{} does not load: {problems:?}", path.display()));
    let problems: Vec<String> = validate(&settings)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        problems.is_empty(),
        "{} does not validate: {problems:?}",
        path.display(),
    );
    settings
}

#[test]
fn kubernetes_config_map_matches_config_yaml_and_validates_in_the_pod() {
    let k8s = kubernetes();
    let settings = kubernetes_settings(&k8s);
    assert_eq!(settings.server.bind, "0.0.0.0:8080");
    assert_eq!(settings.storage.url, "sqlite:///var/lib/bridge/journal.db");
    for k8s in [k8s, kubernetes_postgres()] {
        assert_eq!(
            k8s.env().get("BRIDGE_CONFIG").map(String::as_str),
            Some("/etc/dnb-hubspot-bridge/config.yaml")
        );
        // The ConfigMap holds config.yaml itself (kustomize reads no file outside its folder).
        let copy = k8s.dir.join("config.yaml");
        assert!(
            read(&copy) == read(&root().join("config.yaml")),
            "{} differs from config.yaml: cp config.yaml {}",
            copy.display(),
            copy.strip_prefix(root()).unwrap().display()
        );
    }
}

#[test]
fn kustomize_builds_when_kubectl_is_installed() {
    if find_tool("kubectl").is_none() {
        println!("notice: kubectl is not on PATH; `kubectl kustomize deploy/kubernetes` not run");
        return;
    }
    for (dir, replicas) in [("kubernetes", 1), ("kubernetes/postgres", 3)] {
        let output = Command::new("kubectl")
            .arg("kustomize")
            .arg(deploy(dir))
            .output()
            .expect("run kubectl");
        assert!(
            output.status.success(),
            "kubectl kustomize deploy/{dir} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).unwrap();
        let objects: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
            .map(|document| Value::deserialize(document).unwrap())
            .collect();
        let config_map = objects
            .iter()
            .find(|o| o["kind"] == "ConfigMap")
            .expect("the generated ConfigMap");
        let name = str_at(config_map, "/metadata/name");
        assert!(
            name.starts_with("dnb-hubspot-bridge-config-"),
            "hashed name: {name}"
        );
        assert!(config_map["data"]["config.yaml"].is_string());
        let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
        assert!(
            array_at(deployment, "/spec/template/spec/volumes")
                .iter()
                .any(|v| v["configMap"]["name"] == name),
            "deploy/{dir}: the Deployment mounts {name}"
        );
        assert_eq!(deployment["spec"]["replicas"].as_u64(), Some(replicas));
        let image = str_at(deployment, "/spec/template/spec/containers/0/image");
        assert!(
            image.contains(':'),
            "deploy/{dir}: the image {image} has a tag"
        );
        assert_eq!(
            objects
                .iter()
                .filter(|o| o["kind"] == "PersistentVolumeClaim")
                .count(),
            usize::from(replicas == 1),
            "deploy/{dir}: a journal claim for SQLite only"
        );
        assert!(
            !objects
                .iter()
                .any(|o| o["kind"] == "Secret" || o["kind"] == "Job"),
            "deploy/{dir}: `apply -k` must not apply the Secret template or the Job"
        );
    }
}

// ---------------------------------------------------------------- Docker

/// Dockerfile instructions (keyword upper-cased, continuations joined, comments dropped).
fn dockerfile_instructions() -> Vec<(String, String)> {
    let text = read(&deploy("Dockerfile"));
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (current.is_empty() && trimmed.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, rest) = current
                    .split_once(char::is_whitespace)
                    .unwrap_or((&current, ""));
                instructions.push((keyword.to_uppercase(), rest.trim().to_string()));
                current.clear();
            }
        }
    }
    instructions
}

/// `KEY=VALUE` pairs of the final stage's ENV instructions.
fn dockerfile_env(stage: &[(String, String)]) -> BTreeMap<String, String> {
    stage
        .iter()
        .filter(|(keyword, _)| keyword == "ENV")
        .flat_map(|(_, rest)| {
            rest.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            Some((key.to_string(), value.trim_matches('"').to_string()))
        })
        .collect()
}

fn final_stage() -> Vec<(String, String)> {
    let instructions = dockerfile_instructions();
    let stages = instructions.iter().filter(|(k, _)| k == "FROM").count();
    assert!(
        stages >= 2,
        "a multi-stage build (builder, then a small runtime)"
    );
    let last_from = instructions.iter().rposition(|(k, _)| k == "FROM").unwrap();
    instructions[last_from..].to_vec()
}

#[test]
fn dockerfile_runs_non_root_with_its_own_healthcheck() {
    let stage = final_stage();
    let last = |keyword: &str| {
        stage
            .iter()
            .rev()
            .find(|(k, _)| k == keyword)
            .map(|(_, rest)| rest.clone())
            .unwrap_or_else(|| panic!("no {keyword} in the runtime stage"))
    };
    let user = last("USER");
    let name = user.split(':').next().unwrap();
    assert!(
        name != "root" && name != "0" && !name.is_empty(),
        "USER {user} is root"
    );
    let healthcheck = last("HEALTHCHECK");
    assert!(
        healthcheck.contains("CMD")
            && healthcheck.contains("dnb-hubspot-bridge")
            && healthcheck.contains("healthcheck"),
        "HEALTHCHECK must run the binary's healthcheck: {healthcheck}"
    );
    for tool in ["curl", "wget"] {
        assert!(!healthcheck.contains(tool), "HEALTHCHECK uses {tool}");
    }
    let env = dockerfile_env(&stage);
    assert_eq!(
        env.get("BRIDGE__SERVER__BIND").map(String::as_str),
        Some("0.0.0.0:8080")
    );
    let journal = env
        .get("BRIDGE__STORAGE__URL")
        .and_then(|url| url.strip_prefix("sqlite://"))
        .expect("BRIDGE__STORAGE__URL=sqlite://...")
        .to_string();
    let journal_dir = Path::new(&journal)
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        last("VOLUME").contains(&journal_dir),
        "the journal directory {journal_dir} is a VOLUME"
    );
    assert!(last("EXPOSE").contains("8080"));
    assert!(last("ENTRYPOINT").contains("dnb-hubspot-bridge"));
}

#[test]
fn dockerfile_copies_everything_the_manifest_needs() {
    let instructions = dockerfile_instructions();
    let ignored = read(&root().join(".dockerignore"));
    let ignored: Vec<&str> = ignored
        .lines()
        .map(|l| l.trim().trim_end_matches('/'))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let mut copied = BTreeSet::new();
    for (_, rest) in instructions.iter().filter(|(k, _)| k == "COPY") {
        let words: Vec<&str> = rest
            .split_whitespace()
            .filter(|w| !w.starts_with("--"))
            .collect();
        if rest.contains("--from=") {
            continue;
        }
        for source in &words[..words.len() - 1] {
            let source = source.trim_end_matches('/');
            assert!(root().join(source).exists(), "COPY {source}: no such path");
            assert!(
                !ignored.contains(&source),
                "COPY {source} is excluded by .dockerignore"
            );
            copied.insert(source.to_string());
        }
    }
    let manifest = read(&root().join("Cargo.toml"));
    let mut needed = vec![
        "Cargo.toml",
        "Cargo.lock",
        "src",
        "migrations",
        "config.yaml",
    ];
    // The build settings of the bundled SQLite (fdatasync).
    if root().join(".cargo/config.toml").exists() {
        needed.push(".cargo");
    }
    // Cargo refuses to parse a manifest whose [[bench]] files are missing.
    if manifest.contains("[[bench]]") {
        needed.push("benches");
    }
    if manifest.contains("[[example]]") {
        needed.push("examples");
    }
    for path in needed {
        assert!(
            copied.contains(path),
            "deploy/Dockerfile does not COPY {path}"
        );
    }
}

// ---------------------------------------------------------------- compose

/// `KEY=VALUE` lines of deploy/.env.example.
fn env_example() -> BTreeMap<String, String> {
    read(&deploy(".env.example"))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Names of `${VAR}`, `${VAR:-x}`, `${VAR:?x}` references.
fn interpolated_names(text: &str) -> BTreeSet<String> {
    text.split("${")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

fn duration_secs(text: &str) -> u64 {
    if let Some(minutes) = text.strip_suffix('m') {
        return minutes.parse::<u64>().unwrap() * 60;
    }
    text.trim_end_matches('s')
        .parse()
        .unwrap_or_else(|_| panic!("duration {text}"))
}

#[test]
fn compose_stack_wires_the_bridge_prometheus_and_grafana() {
    let compose = yaml(&deploy("docker-compose.yml"));
    let services = compose["services"].as_object().expect("services");
    for service in ["bridge", "prometheus", "grafana"] {
        assert!(services.contains_key(service), "no {service} service");
    }
    let bridge = &compose["services"]["bridge"];
    assert_eq!(str_at(bridge, "/build/context"), "..");
    assert!(root().join(str_at(bridge, "/build/dockerfile")).is_file());
    let environment = bridge["environment"]
        .as_object()
        .expect("environment as a map");
    for secret in [
        "BRIDGE_WEBHOOK_SECRET",
        "HUBSPOT_API_TOKEN",
        "BRIDGE_ADMIN_TOKEN",
    ] {
        let value = environment
            .get(secret)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("the bridge does not get {secret}"));
        assert!(
            value.starts_with(&format!("${{{secret}")),
            "{secret} must come from deploy/.env, not the file"
        );
    }

    // Every variable the compose file uses is documented in .env.example, and no more.
    let example = env_example();
    let used = interpolated_names(&read(&deploy("docker-compose.yml")));
    let documented: BTreeSet<String> = example.keys().cloned().collect();
    assert_eq!(
        used, documented,
        "docker-compose.yml variables vs deploy/.env.example"
    );
    assert!(
        read(&deploy(".gitignore"))
            .lines()
            .any(|l| l.trim() == ".env")
    );

    // Mounted host paths exist.
    for (name, service) in services {
        for mount in service["volumes"].as_array().into_iter().flatten() {
            let host = mount.as_str().unwrap().split(':').next().unwrap();
            if host.starts_with('.') {
                assert!(deploy(host).exists(), "{name}: {host} does not exist");
            }
        }
    }

    // The bridge, as compose starts it with the example env, loads and validates.
    let mut variables = dockerfile_env(&final_stage());
    for (name, value) in environment {
        let value = value.as_str().unwrap();
        let resolved = interpolated_names(value)
            .into_iter()
            .next()
            .map(|var| example.get(&var).cloned().unwrap_or_default())
            .unwrap_or_else(|| value.to_string());
        variables.insert(name.clone(), resolved);
    }
    let settings = load_settings(&root().join("config.yaml"), &variables);
    assert_eq!(settings.server.bind, "0.0.0.0:8080");
    let grace = duration_secs(str_at(bridge, "/stop_grace_period"));
    assert!(
        grace > settings.server.shutdown_timeout_secs,
        "stop_grace_period {grace}s must exceed the drain"
    );
    assert!(
        array_at(bridge, "/volumes")
            .iter()
            .any(|m| m.as_str().unwrap().ends_with(":/var/lib/bridge")),
        "the journal directory is a volume"
    );
}

/// `value` with `${NAME}`, `${NAME:-default}` and `${NAME:?message}` filled in from
/// `variables` as Compose does (an unset or empty variable takes the default).
fn compose_interpolate(value: &str, variables: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = start + rest[start..].find('}').expect("a closing }");
        let inner = &rest[start + 2..end];
        let name: String = inner
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        match variables.get(&name).filter(|v| !v.is_empty()) {
            Some(value) => out.push_str(value),
            None => out.push_str(inner[name.len()..].strip_prefix(":-").unwrap_or("")),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Host ports a service publishes (`"8080:8080"`, `"127.0.0.1:9090:9090"`).
fn published_ports(service: &Value) -> Vec<(String, String)> {
    service["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|port| {
            let port = port.as_str().expect("ports as strings");
            let (host, container) = port.rsplit_once(':').expect("HOST:CONTAINER");
            (host.to_string(), container.to_string())
        })
        .collect()
}

#[test]
fn compose_postgres_profile_runs_two_replicas_on_one_database_behind_the_proxy() {
    let compose = yaml(&deploy("docker-compose.yml"));
    let services = compose["services"].as_object().expect("services");
    let example = env_example();

    // `docker compose up` without a profile starts what it always did.
    for name in ["bridge", "prometheus", "grafana"] {
        assert!(
            services[name]["profiles"].is_null(),
            "{name} must run without a profile"
        );
    }
    for name in ["postgres", "bridge-1", "bridge-2", "proxy"] {
        let service = services
            .get(name)
            .unwrap_or_else(|| panic!("no {name} service"));
        assert_eq!(
            service["profiles"],
            serde_json::json!(["postgres"]),
            "{name} belongs to the postgres profile"
        );
    }
    // Images are pinned; the bridge's own image is built from the repository.
    for (name, service) in services {
        let image = str_at(service, "/image");
        let tag = image
            .rsplit_once(':')
            .map(|(_, tag)| tag)
            .unwrap_or_else(|| panic!("{name}: {image} has no tag"));
        assert!(
            service["build"].is_object()
                || (tag != "latest" && tag.chars().any(|c| c.is_ascii_digit())),
            "{name}: {image} is not pinned to a version"
        );
    }
    // Both stacks can run side by side: no host port is published twice.
    let mut host_ports = BTreeSet::new();
    for (name, service) in services {
        for (host, _) in published_ports(service) {
            assert!(
                host_ports.insert(host.clone()),
                "{name}: {host} published twice"
            );
        }
    }

    // PostgreSQL: official image, a volume, a readiness check, not published.
    let postgres = &services["postgres"];
    assert!(str_at(postgres, "/image").starts_with("postgres:"));
    let check = postgres["healthcheck"]["test"].to_string();
    assert!(check.contains("pg_isready"), "healthcheck {check}");
    assert!(
        array_at(postgres, "/volumes")
            .iter()
            .any(|m| m.as_str().unwrap().ends_with(":/var/lib/postgresql/data")),
        "the database lives on a volume"
    );
    assert!(postgres["ports"].is_null(), "the database is not published");
    let postgres_env =
        |key: &str| compose_interpolate(str_at(postgres, &format!("/environment/{key}")), &example);
    let (user, database, password) = (
        postgres_env("POSTGRES_USER"),
        postgres_env("POSTGRES_DB"),
        postgres_env("POSTGRES_PASSWORD"),
    );
    assert!(!password.is_empty());

    // Two identical replicas on that database, each started once it is healthy.
    assert_eq!(services["bridge-1"], services["bridge-2"]);
    let bridge = &services["bridge-1"];
    assert_eq!(str_at(bridge, "/build/context"), "..");
    assert_eq!(
        str_at(bridge, "/image"),
        str_at(&services["bridge"], "/image"),
        "the replicas run the default stack's image"
    );
    assert_eq!(
        bridge["depends_on"]["postgres"]["condition"], "service_healthy",
        "the replicas wait for the database"
    );
    assert!(
        published_ports(bridge).is_empty(),
        "the proxy is the way in"
    );
    assert!(
        array_at(bridge, "/volumes")
            .iter()
            .all(|m| !m.as_str().unwrap().contains(":/var/lib/bridge")),
        "no journal volume"
    );
    assert_eq!(bridge["read_only"], true);
    assert_eq!(bridge["cap_drop"], serde_json::json!(["ALL"]));
    let environment = bridge["environment"]
        .as_object()
        .expect("environment as a map");
    for secret in [
        "BRIDGE_WEBHOOK_SECRET",
        "HUBSPOT_API_TOKEN",
        "BRIDGE_ADMIN_TOKEN",
    ] {
        assert!(
            str_at(bridge, &format!("/environment/{secret}")).starts_with(&format!("${{{secret}")),
            "{secret} must come from deploy/.env"
        );
    }
    let mut variables = dockerfile_env(&final_stage());
    for (name, value) in environment {
        variables.insert(
            name.clone(),
            compose_interpolate(value.as_str().unwrap(), &example),
        );
    }
    let settings = load_settings(&root().join("config.yaml"), &variables);
    assert_eq!(
        settings.storage.url,
        format!("postgres://{user}:{password}@postgres:5432/{database}"),
        "BRIDGE__STORAGE__URL (which overrides the image's SQLite path) names the postgres service"
    );
    assert!(
        (5..=60).contains(&settings.workers.lease_secs),
        "a short lease: {}",
        settings.workers.lease_secs
    );
    let grace = duration_secs(str_at(bridge, "/stop_grace_period"));
    assert!(grace > settings.server.shutdown_timeout_secs);

    // The proxy: nginx, round robin over both replicas, once both are healthy.
    let proxy = &services["proxy"];
    assert!(str_at(proxy, "/image").starts_with("nginx:"));
    for replica in ["bridge-1", "bridge-2"] {
        assert_eq!(
            proxy["depends_on"][replica]["condition"], "service_healthy",
            "the proxy starts once {replica} serves"
        );
    }
    let mount = array_at(proxy, "/volumes")
        .iter()
        .filter_map(Value::as_str)
        .find(|m| m.starts_with("./nginx/"))
        .expect("the proxy's configuration from deploy/nginx/");
    let conf = read(&deploy(mount.split(':').next().unwrap()));
    let directives: Vec<Vec<&str>> = conf
        .lines()
        .map(|line| line.split('#').next().unwrap().trim())
        .filter(|line| !line.is_empty())
        .map(|line| {
            line.trim_end_matches(['{', ';'])
                .split_whitespace()
                .collect()
        })
        .collect();
    let values = |directive: &str| -> Vec<Vec<&str>> {
        directives
            .iter()
            .filter(|words| words.first() == Some(&directive))
            .map(|words| words[1..].to_vec())
            .collect()
    };
    let upstreams = values("upstream");
    assert_eq!(upstreams.len(), 1, "one upstream");
    let upstream = upstreams[0][0];
    // `server host:port` lines of the upstream (a bare `server {` opens the server block).
    let servers: Vec<&str> = values("server")
        .iter()
        .filter_map(|words| words.first().copied())
        .collect();
    assert_eq!(servers, ["bridge-1:8080", "bridge-2:8080"], "both replicas");
    assert!(
        values("proxy_pass")
            .iter()
            .any(|words| words[0] == format!("http://{upstream}")),
        "requests go to the upstream {upstream}"
    );
    let listen = values("listen");
    let (_, container_port) = published_ports(proxy)
        .into_iter()
        .next()
        .expect("the proxy publishes a port");
    assert!(
        listen.iter().any(|words| words[0] == container_port),
        "nginx listens on the published port {container_port}"
    );
    let body_limit = values("client_max_body_size")[0][0];
    let body_limit: u64 = match body_limit.strip_suffix('m') {
        Some(mebibytes) => mebibytes.parse::<u64>().unwrap() << 20,
        None => body_limit.parse().unwrap(),
    };
    assert!(
        body_limit >= settings.webhook.max_body_bytes as u64,
        "client_max_body_size {body_limit} is below webhook.max_body_bytes"
    );
}

// ---------------------------------------------------------------- systemd

#[test]
fn systemd_unit_is_hardened_and_outlasts_the_drain() {
    let text = read(&deploy("systemd/dnb-hubspot-bridge.service"));
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            keys.entry(key.to_string())
                .or_default()
                .push(value.to_string());
        }
    }
    let one = |key: &str| {
        keys.get(key)
            .and_then(|values| values.last())
            .cloned()
            .unwrap_or_else(|| panic!("no {key}="))
    };
    assert!(one("ExecStart").ends_with(" serve"));
    assert_ne!(one("User"), "root");
    let stop: u64 = one("TimeoutStopSec").parse().unwrap();
    let settings = Settings::load_with(
        &root().join("config.yaml"),
        &|_| None,
        Some(config::Map::new()),
    )
    .expect("config.yaml loads");
    assert!(
        stop > settings.server.shutdown_timeout_secs,
        "TimeoutStopSec {stop}"
    );
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(one(key), value, "{key}");
    }
    assert!(one("Environment").contains("sqlite:///var/lib/dnb-hubspot-bridge/"));
    assert_eq!(one("StateDirectory"), "dnb-hubspot-bridge");
}

// ---------------------------------------------------------------- linters

fn find_tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Runs `tool` when it is on PATH; without it prints a notice, and fails under `CI=true`.
fn required_in_ci(tool: &str) -> Option<PathBuf> {
    let found = find_tool(tool);
    if found.is_none() {
        let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !in_ci,
            "{tool} is not on PATH and CI=true: .ci/run must install it"
        );
        println!("notice: {tool} is not on PATH; its checks of deploy/ were skipped");
    }
    found
}

fn run_ok(tool: &Path, args: &[&str]) {
    let output = Command::new(tool)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|error| panic!("{}: {error}", tool.display()));
    assert!(
        output.status.success(),
        "{} {} failed:\n{}{}",
        tool.display(),
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_accepts_the_rules_their_tests_the_config_and_the_dashboard_queries() {
    let Some(promtool) = required_in_ci("promtool") else {
        return;
    };
    run_ok(
        &promtool,
        &["check", "rules", "deploy/prometheus/alerts.yml"],
    );
    run_ok(
        &promtool,
        &["check", "config", "deploy/prometheus/prometheus.yml"],
    );
    run_ok(
        &promtool,
        &["test", "rules", "deploy/prometheus/alerts.test.yml"],
    );

    // The dashboard's queries, with Grafana's variables filled in, as recording rules.
    let rules: Vec<Value> = dashboard_expressions(&dashboard())
        .iter()
        .filter(|expr| !expr.starts_with("label_values("))
        .enumerate()
        .map(|(index, expr)| {
            let expr = expr
                .replace("$__rate_interval", "5m")
                .replace("$instance", ".*");
            serde_json::json!({"record": format!("dashboard:query_{index}"), "expr": expr})
        })
        .collect();
    let file = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard-queries.yml");
    std::fs::write(&path, serde_yaml_ng::to_string(&file).unwrap()).unwrap();
    run_ok(&promtool, &["check", "rules", path.to_str().unwrap()]);
}

#[test]
fn hadolint_accepts_the_dockerfile() {
    let Some(hadolint) = required_in_ci("hadolint") else {
        return;
    };
    run_ok(&hadolint, &["deploy/Dockerfile"]);
}
