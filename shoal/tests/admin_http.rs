//! The admin HTTP API end to end: a real server on an ephemeral port, driven by the CLI functions and raw HTTP.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use shoal::cli::{self, OutputFormat};
use shoal::http::{self, AdminState};
use shoal_router::RouterHandle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const BASE: &str = "/apis/shoal.dev/v1beta1";

const SENSORS: &str = r#"apiVersion: shoal.dev/v1beta1
kind: Address
metadata: { name: sensors, namespace: default }
spec: { address: "sensors/#", type: anycast }
"#;

const ALERTS: &str = r#"apiVersion: shoal.dev/v1beta1
kind: Address
metadata: { name: alerts, namespace: ops }
spec: { address: alerts, type: multicast }
"#;

struct Server {
    url: String,
    state: Arc<AdminState>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Starts a server (not yet ready) with `data_dir`, restoring what it holds, as `shoal standalone` does.
    async fn start(data_dir: Option<&Path>) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(AdminState::new(
            RouterHandle::placeholder(),
            Arc::new(AtomicBool::new(false)),
            data_dir.map(Path::to_owned),
        ));
        http::restore(&state).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(http::serve(listener, state.clone(), async {
            let _ = stopped.await;
        }));
        Server {
            url,
            state,
            stop,
            task,
        }
    }

    async fn shutdown(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }

    /// A raw request; returns the status, the content type and the body.
    async fn call(
        &self,
        method: &'static str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> (u16, String, String) {
        let url = format!("{}{path}", self.url);
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            let mut response = match (method, body) {
                ("POST", Some(body)) => agent.post(&url).send(&body[..]),
                ("DELETE", _) => agent.delete(&url).call(),
                _ => agent.get(&url).call(),
            }
            .unwrap();
            let content_type = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let body = response.body_mut().read_to_string().unwrap();
            (response.status().as_u16(), content_type, body)
        })
        .await
        .unwrap()
    }

    async fn json(&self, path: &str) -> (u16, serde_json::Value) {
        let (status, _, body) = self.call("GET", path, None).await;
        (status, serde_json::from_str(&body).unwrap())
    }
}

/// Runs a blocking CLI function off the runtime, capturing what it prints.
async fn run_cli<F>(f: F) -> (anyhow::Result<()>, String)
where
    F: FnOnce(&mut Vec<u8>) -> anyhow::Result<()> + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let result = f(&mut out);
        (result, String::from_utf8(out).unwrap())
    })
    .await
    .unwrap()
}

fn write_manifests(dir: &Path) -> PathBuf {
    let folder = dir.join("manifests-in");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("1-sensors.yaml"), SENSORS).unwrap();
    std::fs::write(folder.join("2-alerts.yml"), ALERTS).unwrap();
    folder
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_apply_get_delete_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(Some(&data)).await;
    let folder = write_manifests(dir.path());

    let url = server.url.clone();
    let (result, printed) = run_cli(move |out| cli::apply_to(&url, &[folder], out)).await;
    result.unwrap();
    assert_eq!(
        printed,
        "address default/sensors configured\naddress ops/alerts configured\n"
    );
    assert!(data.join("manifests/default.sensors.yaml").is_file());
    assert!(data.join("manifests/ops.alerts.yaml").is_file());

    let url = server.url.clone();
    let (result, table) =
        run_cli(move |out| cli::get_addresses_to(&url, OutputFormat::Table, out)).await;
    result.unwrap();
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec![
                "NAMESPACE",
                "NAME",
                "ADDRESS",
                "TYPE",
                "DISTRIBUTION",
                "PHASE"
            ],
            vec![
                "default",
                "sensors",
                "sensors/#",
                "anycast",
                "balanced",
                "Active"
            ],
            vec!["ops", "alerts", "alerts", "multicast", "-", "Active"],
        ]
    );

    let url = server.url.clone();
    let (result, json) =
        run_cli(move |out| cli::get_addresses_to(&url, OutputFormat::Json, out)).await;
    result.unwrap();
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["kind"], "AddressList");
    let url = server.url.clone();
    let (result, yaml) =
        run_cli(move |out| cli::get_addresses_to(&url, OutputFormat::Yaml, out)).await;
    result.unwrap();
    let yaml: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(yaml, json);

    let (status, list) = server.json(&format!("{BASE}/addresses")).await;
    assert_eq!(status, 200);
    assert_eq!(list["apiVersion"], "shoal.dev/v1beta1");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let (status, one) = server
        .json(&format!("{BASE}/namespaces/default/addresses/sensors"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(one["kind"], "Address");
    assert_eq!(one["spec"]["address"], "sensors/#");
    assert_eq!(one["status"]["phase"], "Active");
    let (status, ops) = server
        .json(&format!("{BASE}/namespaces/ops/addresses"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(ops["items"][0]["metadata"]["name"], "alerts");
    assert_eq!(ops["items"].as_array().unwrap().len(), 1);

    let url = server.url.clone();
    let (result, printed) =
        run_cli(move |out| cli::delete_address_to(&url, "default", "sensors", out)).await;
    result.unwrap();
    assert_eq!(printed, "address default/sensors deleted\n");
    assert!(!data.join("manifests/default.sensors.yaml").exists());
    let (status, body) = server
        .json(&format!("{BASE}/namespaces/default/addresses/sensors"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "address default/sensors not found");

    let url = server.url.clone();
    let (result, _) =
        run_cli(move |out| cli::delete_address_to(&url, "default", "sensors", out)).await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "address default/sensors not found"
    );
    let (status, _, _) = server
        .call(
            "DELETE",
            &format!("{BASE}/namespaces/default/addresses/sensors"),
            None,
        )
        .await;
    assert_eq!(status, 404);

    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_manifests_are_refused_with_the_field_and_nothing_applied() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(Some(dir.path())).await;
    let apply = format!("{BASE}/apply");

    // The first document is fine, the second is not: neither may be applied.
    let body = format!("{SENSORS}---\n{}", ALERTS.replace("multicast", "fanout"));
    let (status, content_type, reply) = server.call("POST", &apply, Some(body.into_bytes())).await;
    assert_eq!(status, 422);
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(
        reply["error"],
        r#"request (document 2): spec.type: unknown variant "fanout", expected one of anycast, multicast, queue, topic, subscription"#
    );

    let typo = SENSORS.replace("address:", "adress:");
    let (status, _, reply) = server.call("POST", &apply, Some(typo.into_bytes())).await;
    assert_eq!(status, 422);
    assert!(reply.contains("spec.adress: unknown field"), "{reply}");

    let wrong_kind = SENSORS.replace("kind: Address", "kind: Queue");
    let (status, _, reply) = server
        .call("POST", &apply, Some(wrong_kind.into_bytes()))
        .await;
    assert_eq!(status, 422);
    assert!(reply.contains(r#"kind: unknown kind \"Queue\""#), "{reply}");

    let (status, _, reply) = server.call("POST", &apply, Some(b"\n---\n".to_vec())).await;
    assert_eq!(status, 422);
    assert!(reply.contains("no manifests found"), "{reply}");

    let (status, _, _) = server
        .call("POST", &apply, Some(vec![0xff, 0xfe, b'a']))
        .await;
    assert_eq!(status, 422);

    let huge = vec![b'#'; http::MAX_BODY_BYTES + 1];
    let (status, _, _) = server.call("POST", &apply, Some(huge)).await;
    assert_eq!(status, 413);

    let (_, list) = server.json(&format!("{BASE}/addresses")).await;
    assert_eq!(list["items"], serde_json::json!([]));
    assert!(server.state.addresses().await.is_empty());
    assert!(!dir.path().join("manifests").exists());

    // The same mistake through the CLI is caught locally with the file's name instead of `request`.
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, SENSORS.replace("anycast", "fanout")).unwrap();
    let url = server.url.clone();
    let shown = file.display().to_string();
    let (result, printed) = run_cli(move |out| cli::apply_to(&url, &[file], out)).await;
    assert_eq!(
        result.unwrap_err().to_string(),
        format!(
            r#"{shown} (document 1): spec.type: unknown variant "fanout", expected one of anycast, multicast, queue, topic, subscription"#
        )
    );
    assert_eq!(printed, "");

    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_follows_readiness_and_metrics_are_prometheus_text() {
    let server = Server::start(None).await;
    let (status, _, body) = server.call("GET", "/healthz", None).await;
    assert_eq!((status, body.as_str()), (503, "not ready"));
    server.state.ready.store(true, Ordering::Release);
    let (status, _, body) = server.call("GET", "/healthz", None).await;
    assert_eq!((status, body.as_str()), (200, "ok"));

    let (status, content_type, _) = server.call("GET", "/metrics", None).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, http::PROMETHEUS_CONTENT_TYPE);

    let (status, _, _) = server.call("GET", "/nope", None).await;
    assert_eq!(status, 404);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_restores_applied_addresses_from_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start(Some(dir.path())).await;
    let (status, _, reply) = first
        .call(
            "POST",
            &format!("{BASE}/apply"),
            Some(format!("{SENSORS}---\n{ALERTS}").into_bytes()),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(
        reply["results"],
        serde_json::json!([
            "address default/sensors configured",
            "address ops/alerts configured"
        ])
    );
    let (status, _, _) = first
        .call(
            "DELETE",
            &format!("{BASE}/namespaces/ops/addresses/alerts"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    first.shutdown().await;

    let second = Server::start(Some(dir.path())).await;
    let (_, list) = second.json(&format!("{BASE}/addresses")).await;
    let names: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["sensors"]);
    assert_eq!(list["items"][0]["status"]["phase"], "Active");
    second.shutdown().await;

    // Without the data dir, nothing comes back.
    let third = Server::start(None).await;
    let (_, list) = third.json(&format!("{BASE}/addresses")).await;
    assert_eq!(list["items"], serde_json::json!([]));
    third.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_reports_an_unreachable_server() {
    // A port that was just free: nothing listens there once the listener is dropped.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let (result, _) =
        run_cli(move |out| cli::get_addresses_to(&url, OutputFormat::Table, out)).await;
    let err = result.unwrap_err().to_string();
    assert!(
        err.starts_with("cannot reach the shoal server at http://127.0.0.1:"),
        "{err}"
    );
}
