//! The admin HTTP API of `shoal standalone`: health, metrics, and Kubernetes-shaped address resources.
//!
//! Paths mirror the Kubernetes API server (`/apis/shoal.dev/v1beta1/namespaces/{ns}/addresses/{name}`) so the
//! same manifests and mental model serve standalone and the operator. Applied manifests are the source of
//! truth for reads and, with a data dir, are persisted one file per address so a restart restores them.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use serde_json::json;
use shoal_crds::{Address, AddressStatus, API_VERSION, PHASE_ACTIVE};
use shoal_router::{HandleError, RouterHandle};
use tokio::sync::Mutex;

use crate::broker_manifest::to_broker_address;
use crate::manifest::{self, Manifest, ManifestError};

/// The largest accepted request body: far more than any sane batch of manifests.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The content type Prometheus scrapers expect for the text format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// The origin named in errors about a request body.
const REQUEST_ORIGIN: &str = "request";

/// Everything the admin API works on.
pub struct AdminState {
    pub router: RouterHandle,
    /// `/healthz` answers 200 once this is true (set by the caller when the router listens).
    pub ready: Arc<AtomicBool>,
    /// The in-process broker (standalone): queue, topic and subscription addresses are declared to it too.
    pub broker: Option<shoal_broker::BrokerHandle>,
    /// The brokers (route-container names) the router is connected to: a queue, topic or subscription must be
    /// placed on one of them (`spec.broker`).
    pub brokers: Vec<String>,
    /// Where applied manifests are persisted (`<data_dir>/manifests/`); `None` keeps them in memory only.
    pub data_dir: Option<PathBuf>,
    /// The device registry, served with Hono's management API under `/v1/` (standalone).
    pub registry: Option<shoal_registry::Registry>,
    /// Applied addresses by `namespace/name`. The lock is also held across each apply or delete as a whole,
    /// so concurrent requests never interleave their router calls and files.
    addresses: Mutex<BTreeMap<String, Address>>,
}

impl AdminState {
    pub fn new(router: RouterHandle, ready: Arc<AtomicBool>, data_dir: Option<PathBuf>) -> Self {
        AdminState {
            router,
            ready,
            broker: None,
            brokers: Vec::new(),
            data_dir,
            registry: None,
            addresses: Mutex::new(BTreeMap::new()),
        }
    }

    /// A broker address must name a broker this router knows, or its links could never be routed.
    fn check_placement(&self, manifest: &Manifest) -> Result<(), shoal_crds::FieldError> {
        let Manifest::Address(address) = manifest;
        if !address.spec.r#type.is_broker() {
            return Ok(());
        }
        let broker = manifest::placement(address);
        if self.brokers.iter().any(|b| b == broker) {
            return Ok(());
        }
        let known = if self.brokers.is_empty() {
            "none is known here (start shoal router with --broker NAME=HOST:PORT)".to_owned()
        } else {
            format!("known here: {}", self.brokers.join(", "))
        };
        Err(shoal_crds::FieldError::new(
            "spec.broker",
            format!("no broker named \"{broker}\": {known}"),
        ))
    }

    /// The applied addresses (with status), sorted by `namespace/name`.
    pub async fn addresses(&self) -> Vec<Address> {
        self.addresses.lock().await.values().cloned().collect()
    }

    /// One applied address.
    pub async fn address(&self, namespace: &str, name: &str) -> Option<Address> {
        self.addresses
            .lock()
            .await
            .get(&format!("{namespace}/{name}"))
            .cloned()
    }

    fn manifests_dir(&self) -> Option<PathBuf> {
        self.data_dir.as_ref().map(|d| d.join("manifests"))
    }
}

/// Errors of the admin API; each maps to an HTTP status and a JSON `{"error": "..."}` body.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Invalid input (422): nothing was applied.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A request without a single manifest (422).
    #[error("{0}: no manifests found")]
    Empty(String),
    /// A request body that is not UTF-8 text (422).
    #[error("{0}: the body must be UTF-8 YAML or JSON")]
    NotText(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("router: {0}")]
    Router(#[from] HandleError),
    /// The broker refused or could not apply an address (503).
    #[error("broker: {0}")]
    Broker(#[from] shoal_broker::BrokerError),
    /// Reading or writing the data dir failed (500).
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl AdminError {
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::Manifest(ManifestError::Serialize { .. }) | AdminError::Io { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            AdminError::Manifest(_) | AdminError::Empty(_) | AdminError::NotText(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Router(_) | AdminError::Broker(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.status(), Json(json!({ "error": self.to_string() }))).into_response()
    }
}

/// The admin API's routes.
pub fn app(state: Arc<AdminState>) -> axum::Router {
    let base = "/apis/shoal.dev/v1beta1";
    let registry = state.registry.clone().map(shoal_registry::router);
    let admin = axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/mesh", get(mesh))
        .route(&format!("{base}/addresses"), get(list_all))
        .route(
            &format!("{base}/namespaces/{{ns}}/addresses"),
            get(list_namespace),
        )
        .route(
            &format!("{base}/namespaces/{{ns}}/addresses/{{name}}"),
            get(get_one).delete(delete_one),
        )
        .route(&format!("{base}/apply"), post(apply_body))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    // The registry router has its own body limit and state; merged before the shared fallback.
    let merged = match registry {
        Some(registry) => admin.merge(registry),
        None => admin,
    };
    merged.fallback(|| async {
        (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no such endpoint" })),
        )
    })
}

/// Serves the admin API on `listener` until `shutdown` completes (then finishes in-flight requests).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AdminState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Applies the manifests persisted in the data dir (once, at start-up). Returns how many were restored.
pub async fn restore(state: &AdminState) -> Result<usize, AdminError> {
    let Some(dir) = state.manifests_dir() else {
        return Ok(0);
    };
    let manifests = run_blocking(move || {
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        remove_leftover_temp_files(&dir)?;
        Ok(manifest::load_paths(&[dir])?)
    })
    .await?;
    let count = manifests.len();
    apply_manifests(state, manifests, false).await?;
    Ok(count)
}

/// Applies manifests (from `-f` at start-up) without persisting them: validates all, then applies all.
/// Returns one `address default/x configured` line per manifest.
pub async fn apply(
    state: &AdminState,
    manifests: Vec<Manifest>,
) -> Result<Vec<String>, AdminError> {
    apply_manifests(state, manifests, false).await
}

/// As [`apply`], and also persists each manifest in the data dir (if any), as the API does.
pub async fn apply_and_persist(
    state: &AdminState,
    manifests: Vec<Manifest>,
) -> Result<Vec<String>, AdminError> {
    apply_manifests(state, manifests, true).await
}

/// Deletes an address: its file, its router rule, its entry. Returns the deleted address.
pub async fn delete(
    state: &AdminState,
    namespace: &str,
    name: &str,
) -> Result<Address, AdminError> {
    let key = format!("{namespace}/{name}");
    let mut addresses = state.addresses.lock().await;
    if !addresses.contains_key(&key) {
        return Err(AdminError::NotFound(format!("address {key}")));
    }
    // The file goes first: if that fails nothing has changed, and if we crash later a restart does not
    // bring the address back.
    if let Some(dir) = state.manifests_dir() {
        let file = dir.join(file_name(namespace, name));
        run_blocking(move || match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(AdminError::Io {
                path: file,
                source: e,
            }),
            _ => Ok(()),
        })
        .await?;
    }
    state.router.delete_address(&key).await?;
    if let (Some(broker), Some(held)) = (
        &state.broker,
        addresses.get(&key).and_then(to_broker_address),
    ) {
        broker.delete_address(&held.name).await?;
    }
    let removed = addresses.remove(&key);
    removed.ok_or(AdminError::NotFound(format!("address {key}")))
}

async fn apply_manifests(
    state: &AdminState,
    manifests: Vec<Manifest>,
    persist: bool,
) -> Result<Vec<String>, AdminError> {
    // Validate everything before touching anything, so a bad batch changes nothing.
    for (i, m) in manifests.iter().enumerate() {
        m.validate()
            .and_then(|()| state.check_placement(m))
            .map_err(|error| ManifestError::Invalid {
                origin: "apply".into(),
                index: i + 1,
                error,
            })?;
    }
    let dir = if persist { state.manifests_dir() } else { None };
    let mut addresses = state.addresses.lock().await;
    let mut results = Vec::with_capacity(manifests.len());
    for manifest in manifests {
        let line = format!("{manifest} configured");
        let Manifest::Address(mut address) = manifest;
        if address.metadata.namespace.is_none() {
            address.metadata.namespace = Some(shoal_crds::DEFAULT_NAMESPACE.into());
        }
        address.status = None;
        // Persisted before the router sees it: the file records intent, and a restart re-applies it.
        if let Some(dir) = &dir {
            write_manifest(dir, &address).await?;
        }
        // The broker holds the address before the router routes to it.
        if let (Some(broker), Some(held)) = (&state.broker, to_broker_address(&address)) {
            broker.set_address(held).await?;
        }
        state
            .router
            .set_address(manifest::to_rule(&address))
            .await?;
        address.status = Some(AddressStatus {
            phase: Some(PHASE_ACTIVE.into()),
            message: None,
        });
        addresses.insert(address.key(), address);
        results.push(line);
    }
    Ok(results)
}

/// `<ns>.<name>.yaml`: unambiguous, since a namespace (a DNS label) has no dot.
fn file_name(namespace: &str, name: &str) -> String {
    format!("{namespace}.{name}.yaml")
}

/// Writes the manifest atomically (temp file, fsync, rename) so a crash never leaves half a file to restore.
async fn write_manifest(dir: &Path, address: &Address) -> Result<(), AdminError> {
    let text = manifest::to_yaml(&[Manifest::Address(address.clone())])?;
    let dir = dir.to_owned();
    let name = file_name(address.namespace_or_default(), address.name());
    run_blocking(move || {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| AdminError::Io { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        // A dot-prefixed `.tmp` name is never picked up as a manifest by `load_paths`.
        let tmp = dir.join(format!(".{name}.tmp"));
        let target = dir.join(&name);
        let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(text.as_bytes()).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        std::fs::rename(&tmp, &target).map_err(io(&target))
    })
    .await
}

/// Temp files left by a crash between write and rename.
fn remove_leftover_temp_files(dir: &Path) -> Result<(), AdminError> {
    let io = |source| AdminError::Io {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            std::fs::remove_file(&path).map_err(io)?;
        }
    }
    Ok(())
}

/// Runs file-system work off the async threads (the workspace's tokio has no `fs` feature, on purpose).
async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AdminError> + Send + 'static,
) -> Result<T, AdminError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|join| {
            Err(AdminError::Io {
                path: PathBuf::new(),
                source: std::io::Error::other(format!("file task failed: {join}")),
            })
        })
}

async fn healthz(State(state): State<Arc<AdminState>>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Result<Response, AdminError> {
    let text = state.router.prometheus().await?;
    Ok(([(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)], text).into_response())
}

/// The mesh as this router sees it: its id and mode, neighbours, routes with costs, and where the consumers
/// of each address are (ADR 0009).
async fn mesh(State(state): State<Arc<AdminState>>) -> Result<Response, AdminError> {
    Ok(Json(state.router.mesh().await?).into_response())
}

fn address_list(items: Vec<Address>) -> serde_json::Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": "AddressList",
        "metadata": { "resourceVersion": "" },
        "items": items,
    })
}

async fn list_all(State(state): State<Arc<AdminState>>) -> Json<serde_json::Value> {
    Json(address_list(state.addresses().await))
}

async fn list_namespace(
    State(state): State<Arc<AdminState>>,
    UrlPath(ns): UrlPath<String>,
) -> Json<serde_json::Value> {
    let mut items = state.addresses().await;
    items.retain(|a| a.namespace_or_default() == ns);
    Json(address_list(items))
}

async fn get_one(
    State(state): State<Arc<AdminState>>,
    UrlPath((ns, name)): UrlPath<(String, String)>,
) -> Result<Json<Address>, AdminError> {
    match state.address(&ns, &name).await {
        Some(a) => Ok(Json(a)),
        None => Err(AdminError::NotFound(format!("address {ns}/{name}"))),
    }
}

async fn delete_one(
    State(state): State<Arc<AdminState>>,
    UrlPath((ns, name)): UrlPath<(String, String)>,
) -> Result<Json<Address>, AdminError> {
    delete(&state, &ns, &name).await.map(Json)
}

async fn apply_body(
    State(state): State<Arc<AdminState>>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, AdminError> {
    let text =
        std::str::from_utf8(&body).map_err(|_| AdminError::NotText(REQUEST_ORIGIN.into()))?;
    let manifests = manifest::parse_str(text, REQUEST_ORIGIN)?;
    if manifests.is_empty() {
        return Err(AdminError::Empty(REQUEST_ORIGIN.into()));
    }
    let results = apply_and_persist(&state, manifests).await?;
    Ok(Json(json!({ "results": results })))
}

#[cfg(test)]
mod tests;
