//! The `Address` custom resource: one address (or pattern of addresses) and how messages sent to it are routed.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::keyword::{keyword_enum, Keyword};

/// The namespace of a resource whose manifest does not say.
pub const DEFAULT_NAMESPACE: &str = "default";

/// `status.phase` once the address is in effect.
pub const PHASE_ACTIVE: &str = "Active";

/// The desired state of an address.
// clippy mistakes the repeated `type_ = "string"` of the printer columns for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase")
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddressSpec {
    /// The address, or a pattern of addresses: segments separated by `/` or `.`, where a `*` segment
    /// matches one segment and a `#` segment zero or more.
    #[schemars(length(min = 1, max = 1024))]
    pub address: String,
    /// How messages are delivered: `anycast` (to one consumer) or `multicast` (to every consumer).
    pub r#type: AddressType,
    /// For `anycast` only: `balanced` (default; the consumer with the least outstanding work) or
    /// `closest` (the nearest consumer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Distribution>,
    /// How `address` is matched: `exact`, `prefix` (the address and everything below it) or `pattern`.
    /// Default: `pattern` when the address has a `*` or `#` segment, else `exact`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#match: Option<MatchKind>,
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
    /// The delivery semantics of an address. An enum rather than a flag: `queue`, `topic` and `subscription`
    /// arrive with the broker.
    pub enum AddressType {
        /// Each message goes to one consumer.
        Anycast => "anycast",
        /// Each message goes to every consumer.
        Multicast => "multicast",
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

    /// The distribution in effect for an anycast address (`balanced` unless declared); `None` for multicast.
    pub fn effective_distribution(&self) -> Option<Distribution> {
        match self.r#type {
            AddressType::Anycast => Some(self.distribution.unwrap_or(Distribution::Balanced)),
            AddressType::Multicast => None,
        }
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

    /// A short human-readable form of the spec, for listings: `anycast/balanced`, `multicast`.
    pub fn type_label(&self) -> String {
        match self.spec.effective_distribution() {
            Some(d) => format!("{}/{}", self.spec.r#type.as_str(), d.as_str()),
            None => self.spec.r#type.as_str().to_owned(),
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
