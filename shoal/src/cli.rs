//! The client side of `shoal apply / get / delete`: talks to a running server's admin API (blocking).
//!
//! Manifests are validated locally with the server's own code first, so a mistake is reported the same way
//! whether or not a server is reachable, and names the file rather than the request.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use shoal_crds::{Address, Keyword};

use crate::manifest;

pub mod registry;

/// The admin API's default address.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Long enough for a big apply on a busy router; short enough that a wedged server does not hang a script.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How `get` prints resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// A kubectl-like table.
    #[default]
    Table,
    Yaml,
    Json,
}

/// `shoal apply -f PATH...`: prints `address default/sensors configured` per manifest.
pub fn apply(server: &str, paths: &[PathBuf]) -> anyhow::Result<()> {
    apply_to(server, paths, &mut std::io::stdout().lock())
}

/// `shoal get addresses [-o yaml|json]`.
pub fn get_addresses(server: &str, output: OutputFormat) -> anyhow::Result<()> {
    get_addresses_to(server, output, &mut std::io::stdout().lock())
}

/// `shoal delete address NAME [-n NAMESPACE]`.
pub fn delete_address(server: &str, namespace: &str, name: &str) -> anyhow::Result<()> {
    delete_address_to(server, namespace, name, &mut std::io::stdout().lock())
}

/// [`apply`], writing to `out`. A manifest refused locally or by the server is an error carrying the message.
pub fn apply_to(server: &str, paths: &[PathBuf], out: &mut dyn Write) -> anyhow::Result<()> {
    let manifests = manifest::load_paths(paths)?;
    if manifests.is_empty() {
        bail!("no manifests found in {}", display_paths(paths));
    }
    // Sent as the validated, normalized documents: the server sees exactly what was checked here.
    let body = manifest::to_yaml(&manifests)?;
    let client = Client::new(server);
    let response = client.send("POST", "/apis/shoal.dev/v1beta1/apply", Some(body))?;
    let value = response.json_ok()?;
    let results = value["results"]
        .as_array()
        .context("the server's reply has no \"results\" list")?;
    for line in results {
        writeln!(out, "{}", line.as_str().unwrap_or_default())?;
    }
    Ok(())
}

/// [`get_addresses`], writing to `out`.
pub fn get_addresses_to(
    server: &str,
    output: OutputFormat,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let client = Client::new(server);
    let list = client
        .send("GET", "/apis/shoal.dev/v1beta1/addresses", None)?
        .json_ok()?;
    match output {
        OutputFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?,
        OutputFormat::Yaml => write!(out, "{}", serde_yaml::to_string(&list)?)?,
        OutputFormat::Table => {
            let items: Vec<Address> = serde_json::from_value(list["items"].clone())
                .context("the server's reply is not an AddressList")?;
            if items.is_empty() {
                writeln!(out, "No addresses found.")?;
            } else {
                write!(out, "{}", table(&items))?;
            }
        }
    }
    Ok(())
}

/// [`delete_address`], writing to `out`.
pub fn delete_address_to(
    server: &str,
    namespace: &str,
    name: &str,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let client = Client::new(server);
    let path = format!("/apis/shoal.dev/v1beta1/namespaces/{namespace}/addresses/{name}");
    client.send("DELETE", &path, None)?.json_ok()?;
    writeln!(out, "address {namespace}/{name} deleted")?;
    Ok(())
}

/// Renders addresses as a table: NAMESPACE NAME ADDRESS TYPE DISTRIBUTION PHASE.
pub fn table(items: &[Address]) -> String {
    let header = [
        "NAMESPACE",
        "NAME",
        "ADDRESS",
        "TYPE",
        "DISTRIBUTION",
        "PHASE",
    ]
    .map(String::from);
    let mut rows = vec![header];
    for a in items {
        let phase = a.status.as_ref().and_then(|s| s.phase.clone());
        rows.push([
            a.namespace_or_default().to_owned(),
            a.name().to_owned(),
            a.spec.address.clone(),
            a.spec.r#type.as_str().to_owned(),
            a.spec
                .effective_distribution()
                .map_or_else(|| "-".to_owned(), |d| d.as_str().to_owned()),
            phase.unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        text.push_str(cells.join("   ").trim_end());
        text.push('\n');
    }
    text
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A minimal client for the admin API; HTTP errors come back as responses so their JSON message can be shown.
struct Client {
    agent: ureq::Agent,
    base: String,
}

struct Reply {
    status: u16,
    body: String,
}

impl Client {
    fn new(server: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        Client {
            agent,
            base: server.trim_end_matches('/').to_owned(),
        }
    }

    /// A request with a JSON body (the registry API); 204 replies read as JSON `null`.
    fn send_json(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<Reply> {
        let url = format!("{}{path}", self.base);
        let unreachable = || format!("cannot reach the shoal server at {}", self.base);
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let json = |r: ureq::RequestBuilder<ureq::typestate::WithBody>| {
            r.header("content-type", "application/json").send(&body)
        };
        let result = match method {
            "POST" => json(self.agent.post(&url)),
            "PUT" => json(self.agent.put(&url)),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self.agent.get(&url).call(),
        };
        let mut response = result.with_context(unreachable)?;
        let status = response.status().as_u16();
        let mut body = response
            .body_mut()
            .read_to_string()
            .with_context(|| format!("reading the reply from {url}"))?;
        if body.trim().is_empty() {
            body = "null".into();
        }
        Ok(Reply { status, body })
    }

    fn send(&self, method: &str, path: &str, body: Option<String>) -> anyhow::Result<Reply> {
        let url = format!("{}{path}", self.base);
        let unreachable = || format!("cannot reach the shoal server at {}", self.base);
        let result = match (method, body) {
            ("POST", Some(body)) => self
                .agent
                .post(&url)
                .header("content-type", "application/yaml")
                .send(body),
            ("DELETE", _) => self.agent.delete(&url).call(),
            _ => self.agent.get(&url).call(),
        };
        let mut response = result.with_context(unreachable)?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .with_context(|| format!("reading the reply from {url}"))?;
        Ok(Reply { status, body })
    }
}

impl Reply {
    /// The JSON body of a 2xx reply; for any other status, an error with the server's message.
    fn json_ok(self) -> anyhow::Result<serde_json::Value> {
        let value: Option<serde_json::Value> = serde_json::from_str(&self.body).ok();
        if !(200..300).contains(&self.status) {
            let message = value
                .as_ref()
                .and_then(|v| v["error"].as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| format!("HTTP {}: {}", self.status, self.body.trim()));
            bail!("{message}");
        }
        value.context("the server's reply is not JSON")
    }
}

#[cfg(test)]
mod tests;
