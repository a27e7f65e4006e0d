//! Password hashing and verification with Hono's conventions.
//!
//! Hono stores `hashed-password` secrets as `pwd-hash` + `hash-function` + optional
//! `salt`. For the SHA family the hash is `base64(H(salt || utf8(password)))` with the
//! salt given base64-encoded; bcrypt hashes carry their salt and cost inside the
//! `$2a$10$...` string, so a separate `salt` is refused for them.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

/// The hash functions Hono accepts for `hashed-password` secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashFunction {
    Bcrypt,
    Sha256,
    Sha512,
}

impl HashFunction {
    /// Parses Hono's `hash-function` value.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "bcrypt" => Some(HashFunction::Bcrypt),
            "sha-256" => Some(HashFunction::Sha256),
            "sha-512" => Some(HashFunction::Sha512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HashFunction::Bcrypt => "bcrypt",
            HashFunction::Sha256 => "sha-256",
            HashFunction::Sha512 => "sha-512",
        }
    }

    fn digest_alg(self) -> Option<&'static digest::Algorithm> {
        match self {
            HashFunction::Bcrypt => None,
            HashFunction::Sha256 => Some(&digest::SHA256),
            HashFunction::Sha512 => Some(&digest::SHA512),
        }
    }
}

/// bcrypt only looks at the first 72 bytes; longer plain passwords are refused at
/// input rather than silently truncated, so two different passwords never match.
pub const BCRYPT_MAX_PASSWORD: usize = 72;

/// Hashes a plain password with bcrypt, in the `$2a$` form Hono (Spring Security)
/// writes, so stored hashes stay importable into Hono.
pub fn bcrypt_hash(password: &str, cost: u32) -> Result<String, bcrypt::BcryptError> {
    let parts = bcrypt::hash_with_result(password, cost)?;
    Ok(parts.format_for_version(bcrypt::Version::TwoA))
}

/// The cost factor of a bcrypt hash string, or why it is not one.
pub fn bcrypt_cost(hash: &str) -> Result<u32, String> {
    hash.parse::<bcrypt::HashParts>()
        .map(|p| p.get_cost())
        .map_err(|e| e.to_string())
}

/// `H(salt || password)` for the SHA family, base64-encoded as Hono stores it.
/// Returns `None` for bcrypt.
pub fn sha_hash(function: HashFunction, salt: &[u8], password: &str) -> Option<String> {
    let mut ctx = digest::Context::new(function.digest_alg()?);
    ctx.update(salt);
    ctx.update(password.as_bytes());
    Some(B64.encode(ctx.finish()))
}

/// The decoded length a SHA `pwd-hash` must have, `None` for bcrypt.
pub fn sha_len(function: HashFunction) -> Option<usize> {
    function.digest_alg().map(|a| a.output_len())
}

/// Checks `password` against a stored hash. `salt` is the raw (decoded) salt.
///
/// bcrypt is slow on purpose (~50 ms at cost 10): callers on an async runtime
/// must run this in `spawn_blocking`.
pub fn verify(
    function: HashFunction,
    stored_hash: &str,
    salt: Option<&[u8]>,
    password: &str,
) -> Result<bool, String> {
    match function {
        HashFunction::Bcrypt => {
            if password.len() > BCRYPT_MAX_PASSWORD {
                // bcrypt would compare only a prefix; a longer input cannot be the
                // password we stored (we refuse those at input).
                return Ok(false);
            }
            bcrypt::verify(password, stored_hash).map_err(|e| e.to_string())
        }
        HashFunction::Sha256 | HashFunction::Sha512 => {
            let expected = B64
                .decode(stored_hash)
                .map_err(|e| format!("stored hash is not base64: {e}"))?;
            let alg = function.digest_alg().ok_or("not a SHA function")?;
            let mut ctx = digest::Context::new(alg);
            ctx.update(salt.unwrap_or_default());
            ctx.update(password.as_bytes());
            Ok(constant_time_eq(ctx.finish().as_ref(), &expected))
        }
    }
}

/// Compares two byte strings in time that depends only on their lengths, so a
/// client cannot learn a stored hash byte by byte from response times.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

/// SHA-256 of `key || data`; used for cache keys, never stored.
pub fn sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(key);
    ctx.update(data);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Fills `buf` from the OS random source.
pub fn random_bytes(buf: &mut [u8]) {
    // The OS RNG only fails on a broken platform (no getrandom, no /dev/urandom);
    // nothing here can run safely without it.
    #[allow(clippy::expect_used)]
    SystemRandom::new()
        .fill(buf)
        .expect("the operating system's random source is unavailable");
}

/// A random 128-bit id as 32 lowercase hex characters (secret and generated object ids).
pub fn random_id() -> String {
    let mut b = [0u8; 16];
    random_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcrypt_round_trip_writes_2a_with_cost() {
        let h = bcrypt_hash("s3cret", 4).unwrap();
        assert!(h.starts_with("$2a$04$"), "{h}");
        assert_eq!(bcrypt_cost(&h), Ok(4));
        assert_eq!(verify(HashFunction::Bcrypt, &h, None, "s3cret"), Ok(true));
        assert_eq!(verify(HashFunction::Bcrypt, &h, None, "s3creT"), Ok(false));
        assert!(bcrypt_cost("$2a$10$short").is_err());
    }

    #[test]
    fn bcrypt_accepts_2b_and_2y_from_other_tools() {
        let h = bcrypt::hash("pw", 4).unwrap();
        assert!(h.starts_with("$2b$"));
        assert_eq!(verify(HashFunction::Bcrypt, &h, None, "pw"), Ok(true));
        let y = h.replacen("$2b$", "$2y$", 1);
        assert_eq!(verify(HashFunction::Bcrypt, &y, None, "pw"), Ok(true));
    }

    #[test]
    fn bcrypt_refuses_inputs_longer_than_72_bytes() {
        let long = "x".repeat(80);
        let h = bcrypt_hash(&long[..72], 4).unwrap();
        assert_eq!(
            verify(HashFunction::Bcrypt, &h, None, &long[..72]),
            Ok(true)
        );
        // Plain bcrypt would accept this (same 72-byte prefix).
        assert_eq!(verify(HashFunction::Bcrypt, &h, None, &long), Ok(false));
    }

    #[test]
    fn sha_hashes_salt_then_password() {
        // Known answer: SHA-256("abc") with the salt "a" and password "bc".
        let h = sha_hash(HashFunction::Sha256, b"a", "bc").unwrap();
        assert_eq!(h, "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
        assert_eq!(verify(HashFunction::Sha256, &h, Some(b"a"), "bc"), Ok(true));
        // Same bytes, different split: still H(salt || password).
        assert_eq!(verify(HashFunction::Sha256, &h, Some(b"ab"), "c"), Ok(true));
        assert_eq!(
            verify(HashFunction::Sha256, &h, Some(b"x"), "bc"),
            Ok(false)
        );
        assert_eq!(verify(HashFunction::Sha256, &h, None, "bc"), Ok(false));
    }

    #[test]
    fn sha512_known_answer_and_unsalted() {
        let h = sha_hash(HashFunction::Sha512, b"", "abc").unwrap();
        let raw = B64.decode(&h).unwrap();
        assert_eq!(raw.len(), 64);
        assert_eq!(&raw[..4], &[0xdd, 0xaf, 0x35, 0xa1]);
        assert_eq!(verify(HashFunction::Sha512, &h, None, "abc"), Ok(true));
        assert_eq!(verify(HashFunction::Sha512, &h, None, "abd"), Ok(false));
        assert!(verify(HashFunction::Sha512, "not base64!", None, "abc").is_err());
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn hash_function_names_round_trip() {
        for f in [
            HashFunction::Bcrypt,
            HashFunction::Sha256,
            HashFunction::Sha512,
        ] {
            assert_eq!(HashFunction::parse(f.name()), Some(f));
        }
        assert_eq!(HashFunction::parse("md5"), None);
        assert_ne!(random_id(), random_id());
        assert_eq!(random_id().len(), 32);
    }
}
