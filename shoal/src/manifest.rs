//! Manifests: Kubernetes-shaped YAML documents declaring Shoal resources, read from files, folders or request
//! bodies. Parsing validates, so a `Manifest` that exists is one the router can take.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use shoal_crds::{Address, AddressType, FieldError, MatchKind, API_VERSION, DEFAULT_NAMESPACE};
use shoal_router::{AddressRule, Distribution, Matcher};

/// The kinds this build understands, for the error on any other.
const KINDS: &[&str] = &["Address"];

/// One declared resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Manifest {
    Address(Address),
}

impl Manifest {
    /// The kind, as in the manifest (`Address`).
    pub fn kind(&self) -> &'static str {
        match self {
            Manifest::Address(_) => "Address",
        }
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        match self {
            Manifest::Address(a) => a.key(),
        }
    }

    /// Checks the resource again (a `Manifest` can also be built by hand rather than parsed).
    pub fn validate(&self) -> Result<(), FieldError> {
        match self {
            Manifest::Address(a) => a.validate(),
        }
    }
}

impl fmt::Display for Manifest {
    /// `address default/sensors`, the way results are reported.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind().to_ascii_lowercase(), self.key())
    }
}

/// Why manifests were refused; each says where (file, 1-based document number) and, when it can, the field.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{origin}: {source}")]
    Read {
        origin: String,
        source: std::io::Error,
    },
    #[error("{origin} (document {index}): invalid YAML: {source}")]
    Yaml {
        origin: String,
        index: usize,
        source: serde_yaml::Error,
    },
    #[error("{origin} (document {index}): {error}")]
    Invalid {
        origin: String,
        index: usize,
        error: FieldError,
    },
    #[error("cannot serialize {what}: {source}")]
    Serialize {
        what: String,
        source: serde_yaml::Error,
    },
}

impl ManifestError {
    /// The field at fault, when the error is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ManifestError::Invalid { error, .. } => Some(&error.field),
            _ => None,
        }
    }
}

/// Parses and validates every document of a (multi-document, `---` separated) YAML or JSON text.
///
/// `origin` names the text in errors (a file name, `request`). Empty documents are skipped; the same
/// `namespace/name` twice is refused, since which one wins would depend on order.
pub fn parse_str(yaml: &str, origin: &str) -> Result<Vec<Manifest>, ManifestError> {
    let mut seen = Seen::default();
    parse_into(yaml, origin, &mut seen)
}

/// Reads manifests from files and folders (every `*.yaml` / `*.yml` directly in a folder, sorted by name;
/// `-` is standard input). A file named explicitly is read whatever its extension.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<Manifest>, ManifestError> {
    let mut seen = Seen::default();
    let mut manifests = Vec::new();
    for path in paths {
        for file in expand(path)? {
            let (origin, text) = read_source(&file)?;
            manifests.extend(parse_into(&text, &origin, &mut seen)?);
        }
    }
    Ok(manifests)
}

/// Serializes manifests as one multi-document YAML text (as `parse_str` reads it back).
pub fn to_yaml(manifests: &[Manifest]) -> Result<String, ManifestError> {
    let mut out = String::new();
    for manifest in manifests {
        let doc = match manifest {
            Manifest::Address(a) => serde_yaml::to_string(a),
        }
        .map_err(|source| ManifestError::Serialize {
            what: manifest.to_string(),
            source,
        })?;
        out.push_str("---\n");
        out.push_str(&doc);
    }
    Ok(out)
}

/// The route-container name of the broker that holds queue, topic and subscription addresses: the name
/// `shoal standalone` gives its own broker, so that rules link-route those addresses to it.
pub const BROKER: &str = "broker";

/// The broker (route container) that holds a queue, topic or subscription address: `spec.broker`, else
/// [`BROKER`].
pub fn placement(address: &Address) -> &str {
    address.spec.broker.as_deref().unwrap_or(BROKER)
}

/// The router rule an `Address` declares; the rule is named `namespace/name`.
///
/// Anycast and multicast addresses are routed by the routers themselves. Queue, topic and subscription
/// addresses are link-routed to their broker ([`placement`]): every link on them is relayed to it, which does the
/// distributing, so the rule's own distribution is just the (unused) default.
pub fn to_rule(address: &Address) -> AddressRule {
    let spec = &address.spec;
    let text = spec.address.clone();
    if spec.r#type.is_broker() {
        // Validation refuses wildcards and non-exact matches on broker addresses, so exact is what was meant.
        return AddressRule {
            name: address.key(),
            matcher: Matcher::Exact(text),
            distribution: Distribution::Balanced,
            link_route: Some(placement(address).into()),
        };
    }
    let matcher = match spec.effective_match() {
        MatchKind::Exact => Matcher::Exact(text),
        MatchKind::Prefix => Matcher::Prefix(text),
        MatchKind::Pattern => Matcher::Pattern(text),
    };
    let distribution = match (spec.r#type, spec.effective_distribution()) {
        (AddressType::Multicast, _) => Distribution::Multicast,
        (_, Some(shoal_crds::Distribution::Closest)) => Distribution::Closest,
        _ => Distribution::Balanced,
    };
    AddressRule {
        name: address.key(),
        matcher,
        distribution,
        link_route: None,
    }
}

/// Where each `namespace/name` was first declared, to refuse duplicates across documents and files.
#[derive(Default)]
struct Seen(HashMap<String, (String, usize)>);

fn parse_into(yaml: &str, origin: &str, seen: &mut Seen) -> Result<Vec<Manifest>, ManifestError> {
    let mut manifests = Vec::new();
    for (i, document) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let index = i + 1;
        let value =
            serde_yaml::Value::deserialize(document).map_err(|source| ManifestError::Yaml {
                origin: origin.to_owned(),
                index,
                source,
            })?;
        if value.is_null() {
            continue;
        }
        let invalid = |error: FieldError| ManifestError::Invalid {
            origin: origin.to_owned(),
            index,
            error,
        };
        let manifest = parse_document(value).map_err(invalid)?;
        let key = manifest.key();
        if let Some((first_origin, first_index)) = seen.0.get(&key) {
            return Err(invalid(FieldError::new(
                "metadata.name",
                format!("{manifest} is also declared in {first_origin} (document {first_index})"),
            )));
        }
        seen.0.insert(key, (origin.to_owned(), index));
        manifests.push(manifest);
    }
    Ok(manifests)
}

fn parse_document(value: serde_yaml::Value) -> Result<Manifest, FieldError> {
    if !value.is_mapping() {
        return Err(FieldError::new(
            "(document)",
            "must be a mapping with apiVersion, kind, metadata and spec",
        ));
    }
    let kind = required_string(&value, "kind")?;
    match kind {
        "Address" => {
            let api_version = required_string(&value, "apiVersion")?;
            if api_version != API_VERSION {
                return Err(FieldError::new(
                    "apiVersion",
                    format!(
                        "unsupported \"{api_version}\" for kind Address, expected {API_VERSION}"
                    ),
                ));
            }
            let mut address = shoal_crds::address_from_value(value).map_err(|e| match e {
                shoal_crds::CrdError::Shape(f) | shoal_crds::CrdError::Invalid(f) => f,
                other => FieldError::new("(document)", other.to_string()),
            })?;
            if address.metadata.namespace.is_none() {
                address.metadata.namespace = Some(DEFAULT_NAMESPACE.to_owned());
            }
            Ok(Manifest::Address(address))
        }
        other => Err(FieldError::new(
            "kind",
            format!(
                "unknown kind \"{other}\", expected one of {}",
                KINDS.join(", ")
            ),
        )),
    }
}

fn required_string<'a>(value: &'a serde_yaml::Value, field: &str) -> Result<&'a str, FieldError> {
    match value.get(field) {
        None | Some(serde_yaml::Value::Null) => Err(FieldError::new(field, "is required")),
        Some(v) => v
            .as_str()
            .ok_or_else(|| FieldError::new(field, "must be a string")),
    }
}

/// A path as the files to read: itself, or the YAML files directly in a folder.
fn expand(path: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let read_err = |source| ManifestError::Read {
        origin: path.display().to_string(),
        source,
    };
    if path.as_os_str() == "-" || !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_err)? {
        let file = entry.map_err(read_err)?.path();
        let yaml = matches!(
            file.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        if yaml && file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    Ok(files)
}

fn read_source(path: &Path) -> Result<(String, String), ManifestError> {
    if path.as_os_str() == "-" {
        let origin = "(stdin)".to_owned();
        let mut text = String::new();
        return match std::io::stdin().read_to_string(&mut text) {
            Ok(_) => Ok((origin, text)),
            Err(source) => Err(ManifestError::Read { origin, source }),
        };
    }
    let origin = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((origin, text)),
        Err(source) => Err(ManifestError::Read { origin, source }),
    }
}

#[cfg(test)]
mod tests;
