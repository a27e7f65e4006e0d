//! The `open` of an inter-router (or edge) connection: who we are, and who the peer says it is.
//!
//! Both ends put three connection properties in their `open`: `shoal:router-id`, `shoal:mode`
//! (`interior` / `edge`) and `shoal:version` (the mesh protocol version), and use the router id as
//! container-id. Only connections of a mesh role read them: a client on a normal listener that sends
//! the same properties is still just a client.

use shoal_amqp::{condition, Open, Symbol, Value};
use shoal_mesh::{Mode, RouterId, PROTOCOL_VERSION};

use super::engine::ConnError;
use super::ConnRole;
use crate::config::RouterConfig;
use crate::core::api::MeshPeer;

pub const ROUTER_ID: &str = "shoal:router-id";
pub const MODE: &str = "shoal:mode";
pub const VERSION: &str = "shoal:version";

/// Our `open` on a connection of `role`.
pub fn our_open(config: &RouterConfig, role: &ConnRole) -> Open {
    let mut open = Open {
        container_id: config.container_id.clone(),
        max_frame_size: config.max_frame_size,
        channel_max: config.channel_max,
        idle_time_out: Some(config.idle_timeout.as_millis() as u32),
        ..Default::default()
    };
    if role.is_mesh() {
        open.container_id = config.router_id().to_owned();
        open.properties = Some(vec![
            (
                Symbol::from(ROUTER_ID),
                Value::String(config.router_id().to_owned()),
            ),
            (
                Symbol::from(MODE),
                Value::String(config.mode.as_str().to_owned()),
            ),
            (Symbol::from(VERSION), Value::Uint(PROTOCOL_VERSION)),
        ]);
    }
    open
}

fn property<'a>(open: &'a Open, key: &str) -> Option<&'a Value> {
    open.properties
        .as_ref()?
        .iter()
        .find(|(k, _)| k.as_str() == key)
        .map(|(_, v)| v)
}

fn text(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s),
        Value::Symbol(s) => Some(s.as_str()),
        _ => None,
    }
}

fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Uint(n) => Some(u64::from(*n)),
        Value::Ulong(n) => Some(*n),
        Value::Ubyte(n) => Some(u64::from(*n)),
        Value::Ushort(n) => Some(u64::from(*n)),
        Value::Int(n) => u64::try_from(*n).ok(),
        Value::Long(n) => u64::try_from(*n).ok(),
        _ => None,
    }
}

/// Who the peer of a mesh connection is, or why the connection is refused (not a Shoal router, another
/// protocol version, an invalid id). `ours` names us in the error so the log line names both ends.
pub fn peer_of(open: &Open, role: &ConnRole, ours: &str) -> Result<MeshPeer, ConnError> {
    let refuse = |why: String| {
        tracing::warn!(router = ours, peer = %open.container_id, "refusing inter-router connection: {why}");
        ConnError::new(condition::NOT_ALLOWED, why)
    };
    let id = property(open, ROUTER_ID).and_then(text).ok_or_else(|| {
        refuse(format!(
            "the peer `{}` did not say it is a Shoal router ({ROUTER_ID} missing)",
            open.container_id
        ))
    })?;
    let id = RouterId::new(id).map_err(|e| refuse(e.to_string()))?;
    let version = property(open, VERSION).and_then(number);
    if version != Some(u64::from(PROTOCOL_VERSION)) {
        return Err(refuse(format!(
            "router {id} speaks mesh protocol version {}, router {ours} speaks {PROTOCOL_VERSION}",
            version.map_or("(none)".to_owned(), |v| v.to_string())
        )));
    }
    let mode = property(open, MODE)
        .and_then(text)
        .and_then(Mode::parse)
        .ok_or_else(|| refuse(format!("router {id} sent no valid {MODE}")))?;
    if id.as_str() == ours {
        return Err(refuse(format!(
            "the peer claims our own router id {ours} (duplicate router id)"
        )));
    }
    let cost = match role {
        ConnRole::MeshDialled { cost, .. } => *cost,
        _ => 1,
    };
    Ok(MeshPeer {
        id,
        mode,
        dialled: role.dialled(),
        cost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_with(props: Vec<(&str, Value)>) -> Open {
        Open {
            container_id: "peer".into(),
            properties: Some(
                props
                    .into_iter()
                    .map(|(k, v)| (Symbol::from(k), v))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn valid() -> Vec<(&'static str, Value)> {
        vec![
            (ROUTER_ID, Value::String("B".into())),
            (MODE, Value::String("edge".into())),
            (VERSION, Value::Uint(PROTOCOL_VERSION)),
        ]
    }

    #[test]
    fn our_open_names_us_only_on_mesh_connections() {
        let config = RouterConfig {
            router_id: Some("A".into()),
            ..RouterConfig::default()
        };
        let mesh = our_open(&config, &ConnRole::MeshAccepted);
        assert_eq!(mesh.container_id, "A");
        let back = peer_of(&mesh, &ConnRole::MeshAccepted, "Z").unwrap();
        assert_eq!(back.id.as_str(), "A");
        assert_eq!(back.mode, Mode::Interior);
        let client = our_open(&config, &ConnRole::Normal);
        assert!(client.properties.is_none());
    }

    #[test]
    fn a_valid_peer_is_read() {
        let peer = peer_of(
            &open_with(valid()),
            &ConnRole::MeshDialled {
                as_edge: false,
                cost: 1,
            },
            "A",
        )
        .unwrap();
        assert_eq!(peer.id.as_str(), "B");
        assert_eq!(peer.mode, Mode::Edge);
        assert!(peer.dialled);
    }

    #[test]
    fn missing_id_other_version_bad_id_and_our_own_id_are_refused() {
        let role = ConnRole::MeshAccepted;
        let mut no_id = valid();
        no_id.remove(0);
        assert!(peer_of(&open_with(no_id), &role, "A").is_err());
        let mut v2 = valid();
        v2[2].1 = Value::Uint(PROTOCOL_VERSION + 1);
        let e = peer_of(&open_with(v2), &role, "A").unwrap_err();
        assert!(e.0.description.unwrap_or_default().contains("version"));
        let mut bad = valid();
        bad[0].1 = Value::String("a b".into());
        assert!(peer_of(&open_with(bad), &role, "A").is_err());
        let e = peer_of(&open_with(valid()), &role, "B").unwrap_err();
        assert!(e.0.description.unwrap_or_default().contains("duplicate"));
    }
}
