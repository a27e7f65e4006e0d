//! Topics <-> AMQP addresses: Hono's device topics and plain MQTT topics.
//!
//! Pure functions, so the whole table is unit-tested without a socket. Who may use what:
//! - plain topics (`a/b/c`, anything outside the Hono prefixes) map to the AMQP address of the same name, for
//!   every client;
//! - `telemetry`/`t` and `event`/`e` need a device identity: a device publishes for itself (`telemetry`,
//!   `telemetry//`, `telemetry/TENANT/` with its own tenant) or, as a gateway, for a device that lists it in `via`
//!   (`telemetry//DEVICE`, `telemetry/TENANT/DEVICE`); they go to `telemetry/TENANT` and `event/TENANT`;
//! - `command///req/#` (`c///q/#`) subscribes to the device's commands, `command//DEVICE/req/#` to those of a
//!   device it is a gateway for, and `command//+/req/#` to those of every device it is a gateway for;
//!   responses are published to `command///res/REQ_ID/STATUS` (`c///s/...`, `command//DEVICE/res/...`).

use shoal_registry::DeviceIdentity;

/// Hono's two north-bound message kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HonoKind {
    Telemetry,
    Event,
}

impl HonoKind {
    /// The AMQP address for a tenant: `telemetry/TENANT` or `event/TENANT`.
    pub fn address(self, tenant: &str) -> String {
        match self {
            HonoKind::Telemetry => format!("telemetry/{tenant}"),
            HonoKind::Event => format!("event/{tenant}"),
        }
    }
}

/// Where a PUBLISH goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishTarget {
    /// To the AMQP address named like the topic.
    Plain,
    /// Hono telemetry or an event of `device` (the publisher itself, or a device it is a gateway for).
    Hono { kind: HonoKind, device: String },
    /// A device's answer to the command it received as `req_id`.
    CommandResponse {
        req_id: String,
        status: i32,
        device: String,
    },
}

/// Where a SUBSCRIBE filter attaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeTarget {
    /// A pattern receiver on the filter (`+` written as the core's `*`; `#` is the same in both).
    Plain { pattern: String },
    /// A receiver on `command/TENANT/DEVICE`. `short`: the client used `c///q/#`, so commands go out on the
    /// short topics too; `via_gateway`: the filter named the device (`command//DEVICE/req/#`), so the topics do.
    Commands {
        device: String,
        short: bool,
        via_gateway: bool,
    },
    /// A gateway's `command//+/req/#`: a pattern receiver on `command/TENANT/#`. Each command's device comes
    /// from the address it was sent to, and only devices that list the gateway in `via` get theirs.
    GatewayCommands { short: bool },
}

/// Why a topic or filter is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// A Hono topic without a device identity, or for a device this one may not act for.
    NotAuthorized,
    /// A Hono topic of a shape the gateway does not know.
    Invalid,
    /// A shape the gateway does not support.
    Unsupported,
}

fn hono_kind(first: &str) -> Option<Option<HonoKind>> {
    match first {
        "telemetry" | "t" => Some(Some(HonoKind::Telemetry)),
        "event" | "e" => Some(Some(HonoKind::Event)),
        "command" | "c" => Some(None),
        _ => None,
    }
}

/// The device a Hono topic's `TENANT/DEVICE` part names, checked against the publisher's identity:
/// empty parts mean "mine".
fn device_for(
    tenant: &str,
    device: &str,
    who: &DeviceIdentity,
    gateway_for: &dyn Fn(&str) -> bool,
) -> Result<String, MapError> {
    if !tenant.is_empty() && tenant != who.tenant_id {
        return Err(MapError::NotAuthorized);
    }
    if device.is_empty() || device == who.device_id {
        return Ok(who.device_id.clone());
    }
    if gateway_for(device) {
        Ok(device.to_owned())
    } else {
        Err(MapError::NotAuthorized)
    }
}

/// Maps a PUBLISH topic. `gateway_for(device)`: may the publisher act for `device` (see
/// `Registry::is_gateway_for`)?
pub fn map_publish(
    topic: &str,
    who: Option<&DeviceIdentity>,
    gateway_for: &dyn Fn(&str) -> bool,
) -> Result<PublishTarget, MapError> {
    let mut parts = topic.split('/');
    let first = parts.next().unwrap_or_default();
    let Some(kind) = hono_kind(first) else {
        return Ok(PublishTarget::Plain);
    };
    let who = who.ok_or(MapError::NotAuthorized)?;
    let rest: Vec<&str> = parts.collect();
    match kind {
        Some(kind) => {
            let device = match rest.as_slice() {
                [] | [""] => who.device_id.clone(),
                [tenant] | [tenant, ""] => device_for(tenant, "", who, gateway_for)?,
                [tenant, device] => device_for(tenant, device, who, gateway_for)?,
                _ => return Err(MapError::Invalid),
            };
            Ok(PublishTarget::Hono { kind, device })
        }
        None => {
            let [tenant, device, res, req_id, status] = rest.as_slice() else {
                return Err(MapError::Invalid);
            };
            let short = first == "c";
            if *res != if short { "s" } else { "res" } || req_id.is_empty() {
                return Err(MapError::Invalid);
            }
            let status = status.parse::<i32>().map_err(|_| MapError::Invalid)?;
            let device = device_for(tenant, device, who, gateway_for)?;
            Ok(PublishTarget::CommandResponse {
                req_id: (*req_id).to_owned(),
                status,
                device,
            })
        }
    }
}

/// Maps a SUBSCRIBE filter.
pub fn map_subscribe(
    filter: &str,
    who: Option<&DeviceIdentity>,
    gateway_for: &dyn Fn(&str) -> bool,
) -> Result<SubscribeTarget, MapError> {
    let mut parts = filter.split('/');
    let first = parts.next().unwrap_or_default();
    match hono_kind(first) {
        None => Ok(SubscribeTarget::Plain {
            pattern: filter.replace('+', "*"),
        }),
        // Devices do not subscribe to telemetry or events: applications consume those over AMQP.
        Some(Some(_)) => Err(MapError::NotAuthorized),
        Some(None) => {
            let who = who.ok_or(MapError::NotAuthorized)?;
            let rest: Vec<&str> = parts.collect();
            let [tenant, device, req, "#"] = rest.as_slice() else {
                return Err(MapError::Invalid);
            };
            let short = first == "c";
            if *req != if short { "q" } else { "req" } {
                return Err(MapError::Invalid);
            }
            if *device == "+" {
                if !tenant.is_empty() && *tenant != who.tenant_id {
                    return Err(MapError::NotAuthorized);
                }
                return Ok(SubscribeTarget::GatewayCommands { short });
            }
            let via_gateway = !device.is_empty() && *device != who.device_id;
            let device = device_for(tenant, device, who, gateway_for)?;
            Ok(SubscribeTarget::Commands {
                device,
                short,
                via_gateway,
            })
        }
    }
}

/// The topic a command goes out on: `command///req/REQ_ID/NAME` (`c///q/...`), or with the device named for a
/// gateway's subscription. A one-way command (no reply-to) has an empty request id.
pub fn command_topic(short: bool, device: Option<&str>, req_id: &str, name: &str) -> String {
    let (c, q) = if short {
        ("c", "q")
    } else {
        ("command", "req")
    };
    let device = device.unwrap_or_default();
    format!("{c}//{device}/{q}/{req_id}/{name}")
}

/// The core pattern of a gateway's `command//+/req/#` in `tenant`. `#` rather than `*`: the core also splits
/// segments at `.`, which device ids may contain; [`command_device`] keeps only one-device addresses.
pub fn gateway_commands_pattern(tenant: &str) -> String {
    format!("command/{tenant}/#")
}

/// The device a command sent to `address` is for: `command/TENANT/DEVICE` with this tenant; `None` for any
/// other address the pattern matched (`command/TENANT` itself, deeper paths).
pub fn command_device<'a>(address: &'a str, tenant: &str) -> Option<&'a str> {
    let device = address
        .strip_prefix("command/")?
        .strip_prefix(tenant)?
        .strip_prefix('/')?;
    (!device.is_empty() && !device.contains('/')).then_some(device)
}

/// The MQTT topic of a message delivered on a plain subscription with `filter`: the message's `to` if it is a
/// topic name the filter matches; else the address the core routed it by (given to pattern subscribers: a
/// message sent on a named link need not carry a `to`); else the filter itself when it is an exact topic.
pub fn delivery_topic<'a>(
    to: Option<&'a str>,
    address: Option<&'a str>,
    filter: &'a str,
) -> Option<&'a str> {
    let fits = |t: &&str| {
        shoal_mqtt::topic::validate_topic_name(t.as_bytes()).is_ok()
            && shoal_mqtt::topic::matches(filter, t)
    };
    to.filter(fits)
        .or_else(|| address.filter(fits))
        .or_else(|| {
            Some(filter).filter(|f| shoal_mqtt::topic::validate_topic_name(f.as_bytes()).is_ok())
        })
}

#[cfg(test)]
mod tests;
