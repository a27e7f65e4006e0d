//! Hono's Device Registry Management API v1 over axum.
//!
//! Status codes follow Hono: 201 + `Location` + `ETag` on create, 200 + `ETag` on
//! read, 204 + `ETag` on update, 204 on delete, 400 `{"error": "..."}` naming the
//! bad field, 403 at a size limit, 404, 409, 412 on an `If-Match` mismatch.
//!
//! Writes run on tokio's blocking pool: they fsync, and credential updates may
//! bcrypt-hash passwords, neither of which belongs on an async worker thread.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::RegistryError;
use crate::model::{Created, Credential, Device, Tenant};
use crate::registry::{Registry, Versioned};

/// The management API routes, ready to be merged into an admin server.
pub fn router(registry: Registry) -> Router {
    let limit = registry.config().max_body_bytes;
    Router::new()
        .route("/v1/tenants", post(create_tenant_generated))
        .route(
            "/v1/tenants/{tenant}",
            post(create_tenant)
                .get(get_tenant)
                .put(update_tenant)
                .delete(delete_tenant),
        )
        .route("/v1/devices/{tenant}", post(create_device_generated))
        .route(
            "/v1/devices/{tenant}/{device}",
            post(create_device)
                .get(get_device)
                .put(update_device)
                .delete(delete_device),
        )
        .route(
            "/v1/credentials/{tenant}/{device}",
            get(get_credentials).put(set_credentials),
        )
        .layer(DefaultBodyLimit::max(limit))
        .with_state(registry)
}

/// An error reply: `{"error": "..."}` with a status. Kept small (not a whole
/// `Response`) so `Result`s carrying it stay cheap to move.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        (self.status, body).into_response()
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(error = %e, "registry operation failed");
        }
        ApiError {
            status,
            message: e.to_string(),
        }
    }
}

type Reply = Result<Response, ApiError>;

/// Parses a JSON body, naming the offending field on error. An empty body means
/// "all defaults" where Hono allows it (tenant and device bodies).
fn parse_body<T: DeserializeOwned>(body: &[u8], empty: Option<T>) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        if let Some(v) = empty {
            return Ok(v);
        }
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let msg = if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        };
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: msg,
        }
    })
}

/// `If-Match` without quotes or weak prefix; `None` if absent.
fn if_match(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::IF_MATCH)?.to_str().ok()?.trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    Some(v.trim_matches('"').to_string())
}

fn etag(version: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"\""))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("registry task failed: {e}"),
        }),
    }
}

fn created(location: String, v: Versioned<String>) -> Response {
    let mut r = (StatusCode::CREATED, Json(Created { id: v.value })).into_response();
    if let Ok(l) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, l);
    }
    r.headers_mut().insert(header::ETAG, etag(&v.version));
    r
}

fn no_content(version: Option<String>) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Some(v) = version {
        r.headers_mut().insert(header::ETAG, etag(&v));
    }
    r
}

fn found<T: Serialize>(v: Versioned<T>) -> Response {
    let mut r = Json(v.value).into_response();
    r.headers_mut().insert(header::ETAG, etag(&v.version));
    r
}

// ---- tenants ------------------------------------------------------------------

async fn create_tenant_generated(State(reg): State<Registry>, body: Bytes) -> Reply {
    do_create_tenant(reg, None, body).await
}

async fn create_tenant(
    State(reg): State<Registry>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Reply {
    do_create_tenant(reg, Some(tenant), body).await
}

async fn do_create_tenant(reg: Registry, id: Option<String>, body: Bytes) -> Reply {
    let tenant: Tenant = parse_body(&body, Some(Tenant::default()))?;
    let v = blocking(move || reg.create_tenant(id.as_deref(), tenant)).await?;
    Ok(created(format!("/v1/tenants/{}", v.value), v))
}

async fn get_tenant(State(reg): State<Registry>, Path(tenant): Path<String>) -> Reply {
    reg.tenant(&tenant).map(found).map_err(ApiError::from)
}

async fn update_tenant(
    State(reg): State<Registry>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let tenant: Tenant = parse_body(&body, Some(Tenant::default()))?;
    let m = if_match(&headers);
    let version = blocking(move || reg.update_tenant(&id, tenant, m.as_deref())).await?;
    Ok(no_content(Some(version)))
}

async fn delete_tenant(
    State(reg): State<Registry>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Reply {
    let m = if_match(&headers);
    blocking(move || reg.delete_tenant(&id, m.as_deref())).await?;
    Ok(no_content(None))
}

// ---- devices ------------------------------------------------------------------

async fn create_device_generated(
    State(reg): State<Registry>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Reply {
    do_create_device(reg, tenant, None, body).await
}

async fn create_device(
    State(reg): State<Registry>,
    Path((tenant, device)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    do_create_device(reg, tenant, Some(device), body).await
}

async fn do_create_device(reg: Registry, tenant: String, id: Option<String>, body: Bytes) -> Reply {
    let device: Device = parse_body(&body, Some(Device::default()))?;
    let t = tenant.clone();
    let v = blocking(move || reg.create_device(&t, id.as_deref(), device)).await?;
    Ok(created(format!("/v1/devices/{tenant}/{}", v.value), v))
}

async fn get_device(
    State(reg): State<Registry>,
    Path((tenant, device)): Path<(String, String)>,
) -> Reply {
    reg.device(&tenant, &device)
        .map(found)
        .map_err(ApiError::from)
}

async fn update_device(
    State(reg): State<Registry>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let device: Device = parse_body(&body, Some(Device::default()))?;
    let m = if_match(&headers);
    let version = blocking(move || reg.update_device(&tenant, &id, device, m.as_deref())).await?;
    Ok(no_content(Some(version)))
}

async fn delete_device(
    State(reg): State<Registry>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Reply {
    let m = if_match(&headers);
    blocking(move || reg.delete_device(&tenant, &id, m.as_deref())).await?;
    Ok(no_content(None))
}

// ---- credentials --------------------------------------------------------------

async fn get_credentials(
    State(reg): State<Registry>,
    Path((tenant, device)): Path<(String, String)>,
) -> Reply {
    reg.credentials(&tenant, &device)
        .map(found)
        .map_err(ApiError::from)
}

async fn set_credentials(
    State(reg): State<Registry>,
    Path((tenant, device)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let credentials: Vec<Credential> = parse_body(&body, None)?;
    let m = if_match(&headers);
    let version =
        blocking(move || reg.set_credentials(&tenant, &device, credentials, m.as_deref())).await?;
    Ok(no_content(Some(version)))
}

#[cfg(test)]
mod tests;
