//! The `Address` custom resource: one address (or pattern of addresses) and how messages sent to it are routed.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;
use crate::keyword::{keyword_enum, Keyword};

/// The namespace of a resource whose manifest does not say.
pub const DEFAULT_NAMESPACE: &str = "default";

/// `status.phase` once the address is in effect.
pub const PHASE_ACTIVE: &str = "Active";

/// The desired state of an address.
// clippy mistakes the repeated `type_ = "string"` of the printer columns for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
// Not `Eq`: `redeliveryDelayMultiplier` is a float.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "shoal.dev",
    version = "v1beta1",
    kind = "Address",
    namespaced,
    shortname = "addr",
    status = "AddressStatus",
    derive = "PartialEq",
    doc = "An address served by the Shoal router mesh, and how messages sent to it are distributed.",
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.address"),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(
        name = "Topic",
        type_ = "string",
        json_path = ".spec.topic",
        priority = 1
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase")
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddressSpec {
    /// The address, or a pattern of addresses: segments separated by `/` or `.`, where a `*` segment
    /// matches one segment and a `#` segment zero or more.
    #[schemars(length(min = 1, max = 1024))]
    pub address: String,
    /// How messages are delivered: `anycast` (to one consumer) or `multicast` (to every consumer), routed
    /// without storing them; or kept by the broker until consumed: `queue` (each message to one consumer),
    /// `topic` (each message to every subscription) or `subscription` (a named durable subscription on `topic`).
    pub r#type: AddressType,
    /// For `anycast` only: `balanced` (default; the consumer with the least outstanding work) or
    /// `closest` (the nearest consumer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Distribution>,
    /// How `address` is matched: `exact`, `prefix` (the address and everything below it) or `pattern`.
    /// Default: `pattern` when the address has a `*` or `#` segment, else `exact`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#match: Option<MatchKind>,
    /// For `subscription` only (and required there): the address of the topic it subscribes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub topic: Option<String>,

    // Broker settings: for queue, topic and subscription only. For a topic, they apply to each subscription.
    /// The broker that holds the address (its route-container name, as given to `shoal router --broker
    /// NAME=HOST:PORT`). Default `broker`: the one `shoal standalone` runs in its own process. A subscription
    /// must name its topic's broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub broker: Option<String>,
    /// Where expired messages are sent (dropped when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub expiry_address: Option<String>,
    /// Where rejected messages, and messages out of delivery attempts, are sent (dropped when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub dead_letter_address: Option<String>,
    /// Failed deliveries before a message is dead-lettered; 0 means unlimited. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delivery_attempts: Option<u32>,
    /// Wait before a failed message is offered again, such as `500ms` or `5s`. Default 0s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redelivery_delay: Option<HumanDuration>,
    /// Each further failed delivery multiplies the delay by this (at least 1.0). Default 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1.0))]
    pub redelivery_delay_multiplier: Option<f64>,
    /// The longest redelivery delay, such as `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_delivery_delay: Option<HumanDuration>,
    /// Bounds on each message's time to live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_ttl: Option<MessageTtl>,
    /// Bytes of messages the address may hold (each subscription, for a topic); unbounded when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_size_bytes: Option<u64>,
    /// What senders to a full address get: `block` (default; no credit until there is room) or `reject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_policy: Option<FullPolicy>,
}

/// Bounds on the time to live of the messages of a broker address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MessageTtl {
    /// A message's own TTL is raised to at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<HumanDuration>,
    /// A message's own TTL is lowered to at most this; a message without a TTL gets this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<HumanDuration>,
}

/// The observed state of an address, filled in by whoever applies it (the standalone server, the operator).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddressStatus {
    /// `Active` once the address is in effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// A human-readable detail, such as why the address is not active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

keyword_enum! {
    /// The delivery semantics of an address: routed (`anycast`, `multicast`) or stored by the broker
    /// (`queue`, `topic`, `subscription`).
    pub enum AddressType {
        /// Each message goes to one consumer.
        Anycast => "anycast",
        /// Each message goes to every consumer.
        Multicast => "multicast",
        /// Stored by the broker; each message goes to one consumer.
        Queue => "queue",
        /// Stored by the broker; each message goes to every subscription.
        Topic => "topic",
        /// A named durable subscription on a topic, consumed at its own address.
        Subscription => "subscription",
    }
}

impl AddressType {
    /// Whether the broker stores the messages of this address (queue, topic, subscription), rather than the
    /// routers passing them straight to consumers.
    pub fn is_broker(self) -> bool {
        matches!(
            self,
            AddressType::Queue | AddressType::Topic | AddressType::Subscription
        )
    }
}

keyword_enum! {
    /// What a broker address that is full does to its senders.
    pub enum FullPolicy {
        /// Withhold credit until there is room again.
        Block => "block",
        /// Reject each message.
        Reject => "reject",
    }
}

keyword_enum! {
    /// Which consumer an anycast message goes to.
    pub enum Distribution {
        /// The consumer with the fewest unsettled deliveries.
        Balanced => "balanced",
        /// The nearest consumer.
        Closest => "closest",
    }
}

keyword_enum! {
    /// How `spec.address` is compared with the address a message is sent to.
    pub enum MatchKind {
        /// The same string.
        Exact => "exact",
        /// The address itself and every address below it.
        Prefix => "prefix",
        /// Segments separated by `/` or `.`; `*` matches one segment, `#` zero or more.
        Pattern => "pattern",
    }
}

impl AddressSpec {
    /// The match kind in effect: the declared one, else `pattern` for an address with wildcard segments,
    /// else `exact`.
    pub fn effective_match(&self) -> MatchKind {
        match self.r#match {
            Some(kind) => kind,
            None if has_wildcard_segment(&self.address) => MatchKind::Pattern,
            None => MatchKind::Exact,
        }
    }

    /// The distribution in effect for an anycast address (`balanced` unless declared); `None` for the others
    /// (for broker addresses the broker, not the router, picks consumers).
    pub fn effective_distribution(&self) -> Option<Distribution> {
        match self.r#type {
            AddressType::Anycast => Some(self.distribution.unwrap_or(Distribution::Balanced)),
            AddressType::Multicast
            | AddressType::Queue
            | AddressType::Topic
            | AddressType::Subscription => None,
        }
    }

    /// The broker settings that are set, by their manifest field name, in declaration order.
    pub fn broker_settings_set(&self) -> Vec<&'static str> {
        [
            ("broker", self.broker.is_some()),
            ("expiryAddress", self.expiry_address.is_some()),
            ("deadLetterAddress", self.dead_letter_address.is_some()),
            ("maxDeliveryAttempts", self.max_delivery_attempts.is_some()),
            ("redeliveryDelay", self.redelivery_delay.is_some()),
            (
                "redeliveryDelayMultiplier",
                self.redelivery_delay_multiplier.is_some(),
            ),
            (
                "maximumDeliveryDelay",
                self.maximum_delivery_delay.is_some(),
            ),
            ("messageTtl", self.message_ttl.is_some()),
            ("maxSizeBytes", self.max_size_bytes.is_some()),
            ("fullPolicy", self.full_policy.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

impl Address {
    /// The namespace, or `default` when the manifest has none.
    pub fn namespace_or_default(&self) -> &str {
        self.metadata
            .namespace
            .as_deref()
            .unwrap_or(DEFAULT_NAMESPACE)
    }

    /// The name (empty if missing; validation refuses that).
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }

    /// `namespace/name`: the identity of the address across the mesh.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace_or_default(), self.name())
    }

    /// A short human-readable form of the spec, for listings: `anycast/balanced`, `multicast`, `queue`,
    /// `subscription(news)`. Parentheses for the topic because an address may itself contain `/`.
    pub fn type_label(&self) -> String {
        let kind = self.spec.r#type.as_str();
        match (self.spec.effective_distribution(), &self.spec.topic) {
            (Some(d), _) => format!("{kind}/{}", d.as_str()),
            (None, Some(topic)) if self.spec.r#type == AddressType::Subscription => {
                format!("{kind}({topic})")
            }
            (None, _) => kind.to_owned(),
        }
    }
}

/// The characters that separate address segments.
pub(crate) const SEGMENT_SEPARATORS: [char; 2] = ['/', '.'];

/// Whether some segment of `address` is a whole `*` or `#`.
pub fn has_wildcard_segment(address: &str) -> bool {
    address
        .split(SEGMENT_SEPARATORS)
        .any(|segment| segment == "*" || segment == "#")
}
