//! The SASL users file: `users: [{name: alice, password: secret}]`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    users: Vec<User>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct User {
    name: String,
    password: String,
}

/// Read a users file into name -> password.
pub fn load(path: &Path) -> anyhow::Result<HashMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("in users file {}", path.display()))
}

pub fn parse(text: &str) -> anyhow::Result<HashMap<String, String>> {
    let file: UsersFile = serde_yaml::from_str(text)?;
    let mut users = HashMap::new();
    for (i, u) in file.users.into_iter().enumerate() {
        anyhow::ensure!(!u.name.is_empty(), "users[{i}].name: must not be empty");
        anyhow::ensure!(
            users.insert(u.name.clone(), u.password).is_none(),
            "users[{i}].name: {} appears twice",
            u.name
        );
    }
    anyhow::ensure!(!users.is_empty(), "users: the list is empty");
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_users_and_refuses_duplicates() {
        let users =
            parse("users:\n- {name: alice, password: s1}\n- {name: bob, password: s2}\n").unwrap();
        assert_eq!(users.get("alice").map(String::as_str), Some("s1"));
        let err =
            parse("users:\n- {name: a, password: x}\n- {name: a, password: y}\n").unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err}");
        assert!(parse("users:\n- {name: a, pasword: x}\n").is_err());
    }
}
