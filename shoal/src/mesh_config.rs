//! The mesh settings of `shoal standalone` / `shoal router` in a file (`--config FILE`), for deployments that
//! keep configuration in a ConfigMap rather than on the command line:
//!
//! ```yaml
//! routerId: router-a
//! mode: interior                      # or edge
//! interRouterListen: 0.0.0.0:55672
//! connect:
//!   - inter-router://router-b:55672?cost=2
//!   - inter-router://router-c:55672
//! ```
//!
//! Every key is optional. A flag given on the command line wins over the file; `--connect` flags add to the
//! file's list. Mistakes are refused with the key named (`connect[1]: ...`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use shoal_router::{Mode, PeerRole};

/// A router to keep a connection to: its role, address and the link's cost.
pub type Peer = (PeerRole, SocketAddr, u32);

/// What a mesh config file says.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct File {
    router_id: Option<String>,
    mode: Option<String>,
    inter_router_listen: Option<SocketAddr>,
    #[serde(default)]
    connect: Vec<String>,
}

/// The mesh settings, from the file and the flags together.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshSettings {
    pub router_id: Option<String>,
    pub mode: Mode,
    pub inter_router_listen: Option<SocketAddr>,
    pub connect: Vec<Peer>,
}

/// The flags' values (`None` / empty where not given).
#[derive(Debug, Clone, Default)]
pub struct MeshFlags {
    pub router_id: Option<String>,
    pub mode: Option<Mode>,
    pub inter_router_listen: Option<SocketAddr>,
    pub connect: Vec<Peer>,
}

impl MeshFlags {
    /// These flags over the file at `path` (if any).
    pub fn resolve(self, path: Option<&Path>) -> anyhow::Result<MeshSettings> {
        let file = match path {
            None => File::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the config file {}", path.display()))?;
                parse(&text).with_context(|| format!("in the config file {}", path.display()))?
            }
        };
        let mode = match (self.mode, &file.mode) {
            (Some(m), _) => m,
            (None, Some(text)) => parse_mode(text).context("mode")?,
            (None, None) => Mode::Interior,
        };
        let mut connect = Vec::with_capacity(file.connect.len() + self.connect.len());
        for (i, text) in file.connect.iter().enumerate() {
            connect.push(parse_peer(text).with_context(|| format!("connect[{i}]"))?);
        }
        connect.extend(self.connect);
        Ok(MeshSettings {
            router_id: self.router_id.or(file.router_id),
            mode,
            inter_router_listen: self.inter_router_listen.or(file.inter_router_listen),
            connect,
        })
    }
}

fn parse(text: &str) -> anyhow::Result<File> {
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        anyhow::anyhow!("{path}: {}", e.into_inner())
    })
}

/// `interior` or `edge`.
pub fn parse_mode(text: &str) -> anyhow::Result<Mode> {
    Mode::parse(text).with_context(|| format!("`{text}`: expected interior or edge"))
}

/// `inter-router://HOST:PORT` or `edge://HOST:PORT`, optionally with `?cost=N` (default 1).
pub fn parse_peer(text: &str) -> anyhow::Result<Peer> {
    let (role, rest) = if let Some(rest) = text.strip_prefix("inter-router://") {
        (PeerRole::InterRouter, rest)
    } else if let Some(rest) = text.strip_prefix("edge://") {
        (PeerRole::Edge, rest)
    } else {
        anyhow::bail!("`{text}`: expected inter-router://HOST:PORT or edge://HOST:PORT");
    };
    let (rest, cost) = match rest.split_once("?cost=") {
        Some((hostport, cost)) => match cost.parse::<u32>() {
            Ok(c) if c >= 1 => (hostport, c),
            _ => anyhow::bail!("`{cost}`: the cost is a whole number from 1"),
        },
        None => (rest, 1),
    };
    let addr = rest
        .to_socket_addrs()
        .with_context(|| format!("`{rest}` is not HOST:PORT"))?
        .next()
        .with_context(|| format!("`{rest}` resolves to no address"))?;
    Ok((role, addr, cost))
}

#[cfg(test)]
mod tests;
