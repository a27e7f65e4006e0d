//! The SASL exchange a server runs before AMQP: ANONYMOUS and PLAIN.

use bytes::{Bytes, BytesMut};
use shoal_amqp::{SaslCode, SaslFrame, SaslMechanisms, SaslOutcome, Symbol};

use crate::config::AuthConfig;

/// The mechanisms to offer, in order of preference.
pub fn mechanisms(auth: &AuthConfig) -> SaslFrame {
    let mut mechanisms = Vec::new();
    if !auth.users.is_empty() {
        mechanisms.push(Symbol::from("PLAIN"));
    }
    if auth.allow_anonymous {
        mechanisms.push(Symbol::from("ANONYMOUS"));
    }
    SaslFrame::Mechanisms(SaslMechanisms { mechanisms })
}

/// Who the client proved to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Anonymous,
    User(String),
}

/// Judge a `sasl-init`: the identity, or the outcome code to refuse with.
pub fn authenticate(
    auth: &AuthConfig,
    mechanism: &str,
    response: Option<&Bytes>,
) -> Result<Identity, SaslCode> {
    match mechanism {
        "ANONYMOUS" if auth.allow_anonymous => Ok(Identity::Anonymous),
        "PLAIN" if !auth.users.is_empty() => {
            // authzid NUL authcid NUL passwd
            let response = response.ok_or(SaslCode::Auth)?;
            let mut parts = response.split(|b| *b == 0);
            let (_authzid, user, pass) =
                match (parts.next(), parts.next(), parts.next(), parts.next()) {
                    (Some(z), Some(u), Some(p), None) => (z, u, p),
                    _ => return Err(SaslCode::Auth),
                };
            let user = std::str::from_utf8(user).map_err(|_| SaslCode::Auth)?;
            match auth.users.get(user) {
                Some(expected) if constant_time_eq(expected.as_bytes(), pass) => {
                    Ok(Identity::User(user.to_owned()))
                }
                _ => Err(SaslCode::Auth),
            }
        }
        _ => Err(SaslCode::Auth),
    }
}

/// Compare without leaking where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn outcome(buf: &mut BytesMut, code: SaslCode) {
    shoal_amqp::encode_sasl_frame(
        buf,
        &SaslFrame::Outcome(SaslOutcome {
            code,
            additional_data: None,
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> AuthConfig {
        AuthConfig {
            allow_anonymous: false,
            users: [("alice".to_string(), "secret".to_string())].into(),
        }
    }

    #[test]
    fn plain_checks_the_password() {
        let ok = Bytes::from_static(b"\0alice\0secret");
        let bad = Bytes::from_static(b"\0alice\0wrong");
        let garbage = Bytes::from_static(b"alice");
        assert_eq!(
            authenticate(&auth(), "PLAIN", Some(&ok)),
            Ok(Identity::User("alice".into()))
        );
        assert_eq!(
            authenticate(&auth(), "PLAIN", Some(&bad)),
            Err(SaslCode::Auth)
        );
        assert_eq!(
            authenticate(&auth(), "PLAIN", Some(&garbage)),
            Err(SaslCode::Auth)
        );
        assert_eq!(authenticate(&auth(), "PLAIN", None), Err(SaslCode::Auth));
    }

    #[test]
    fn anonymous_only_when_allowed() {
        assert_eq!(
            authenticate(&auth(), "ANONYMOUS", None),
            Err(SaslCode::Auth)
        );
        let open = AuthConfig {
            allow_anonymous: true,
            ..auth()
        };
        assert_eq!(
            authenticate(&open, "ANONYMOUS", None),
            Ok(Identity::Anonymous)
        );
        assert_eq!(authenticate(&open, "GSSAPI", None), Err(SaslCode::Auth));
    }
}
