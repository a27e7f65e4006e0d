//! Turning a YAML (or JSON) value into a validated resource, with the failing field in every error.

use serde::de::DeserializeOwned;

use crate::address::Address;
use crate::error::{CrdError, FieldError};

/// Deserializes and validates an `Address` from one manifest document.
///
/// `apiVersion` and `kind` are not checked here: the caller dispatches on them before choosing the type.
pub fn address_from_value(value: serde_yaml::Value) -> Result<Address, CrdError> {
    let address: Address = from_value(value)?;
    address.validate().map_err(CrdError::Invalid)?;
    Ok(address)
}

/// Deserializes `T`, reporting the path of the field that did not fit.
pub fn from_value<T: DeserializeOwned>(value: serde_yaml::Value) -> Result<T, CrdError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        CrdError::Shape(shape_error(&path, &err.inner().to_string()))
    })
}

/// Rewrites serde's messages so the field is in the path rather than buried in backticks.
fn shape_error(path: &str, message: &str) -> FieldError {
    // serde_path_to_error writes the root as "."; fields below it as "spec.type".
    let join = |field: &str| match path {
        "." | "" => field.to_owned(),
        _ => format!("{path}.{field}"),
    };
    if let Some(rest) = message.strip_prefix("missing field `") {
        if let Some((field, _)) = rest.split_once('`') {
            return FieldError::new(join(field), "is required");
        }
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        // For an unknown key the path already ends with that key.
        if let Some((_, expected)) = rest.split_once("`, ") {
            return FieldError::new(
                path,
                format!("unknown field, {}", expected.replace('`', "")),
            );
        }
        return FieldError::new(path, "unknown field");
    }
    let field = if path == "." { "(document)" } else { path };
    FieldError::new(field, message.replace('`', "\""))
}
