//! Topic names and filters (MQTT 5, 4.7 and 4.8.2): validation, matching, shared subscriptions,
//! and the two tries the gateway needs, [`TopicTree`] (subscriptions by filter, looked up by
//! topic name) and [`RetainTree`] (retained messages by topic name, looked up by filter).
//!
//! Everything works on bytes split at `/`: the wildcard and separator characters are ASCII, so
//! this is exact on UTF-8 text and needs no decoding.

mod retain;
mod tree;

#[cfg(test)]
mod tests;

pub use retain::RetainTree;
pub use tree::TopicTree;

use crate::error::Error;

/// Prefix of a shared subscription filter: `$share/{ShareName}/{filter}` (4.8.2).
pub const SHARE_PREFIX: &str = "$share/";

/// The deepest topic or filter the trees accept. The tries recurse once per level, so an
/// unbounded depth (a 64 KiB filter of slashes has 65,536 levels) would let one client overflow
/// the stack; real topic trees are a handful of levels deep. (mosquitto's limit is 200.)
pub const MAX_LEVELS: usize = 256;

fn is_wildcard(b: &u8) -> bool {
    *b == b'+' || *b == b'#'
}

/// A topic name as a PUBLISH or a will may carry it: not empty, no wildcard (4.7.3). UTF-8 and
/// U+0000 are checked where the bytes become an [`MqttStr`](crate::MqttStr).
pub fn validate_topic_name(name: &[u8]) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::EmptyTopicName);
    }
    check_no_wildcards(name)
}

pub(crate) fn check_no_wildcards(name: &[u8]) -> Result<(), Error> {
    if name.iter().any(is_wildcard) {
        return Err(Error::WildcardInTopicName);
    }
    Ok(())
}

/// A topic filter as SUBSCRIBE and UNSUBSCRIBE carry it, `$share/{group}/{filter}` included:
/// not empty, `#` only as the whole last level, `+` only as a whole level (4.7.1), and a share
/// name that is non-empty and wildcard-free (4.8.2).
pub fn validate_topic_filter(filter: &[u8]) -> Result<(), Error> {
    let filter = match filter.strip_prefix(SHARE_PREFIX.as_bytes()) {
        Some(rest) => {
            let Some(slash) = rest.iter().position(|&b| b == b'/') else {
                return Err(Error::InvalidTopicFilter(
                    "shared subscription without a filter",
                ));
            };
            let group = &rest[..slash];
            if group.is_empty() {
                return Err(Error::InvalidTopicFilter("empty share name"));
            }
            if group.iter().any(is_wildcard) {
                return Err(Error::InvalidTopicFilter("wildcard in share name"));
            }
            &rest[slash + 1..]
        }
        None => filter,
    };
    validate_plain_filter(filter)
}

/// A filter without the `$share` prefix.
fn validate_plain_filter(filter: &[u8]) -> Result<(), Error> {
    if filter.is_empty() {
        return Err(Error::InvalidTopicFilter("empty filter"));
    }
    let mut levels = filter.split(|&b| b == b'/').peekable();
    while let Some(level) = levels.next() {
        if level.contains(&b'#') && (level != b"#" || levels.peek().is_some()) {
            return Err(Error::InvalidTopicFilter(
                "'#' must be a whole level and the last one",
            ));
        }
        if level.contains(&b'+') && level != b"+" {
            return Err(Error::InvalidTopicFilter("'+' must be a whole level"));
        }
    }
    Ok(())
}

/// Splits a (valid) filter into its share group and the filter proper:
/// `$share/g/a/+` gives `(Some("g"), "a/+")`, `a/+` gives `(None, "a/+")`.
pub fn split_shared(filter: &str) -> (Option<&str>, &str) {
    match filter
        .strip_prefix(SHARE_PREFIX)
        .and_then(|rest| rest.split_once('/'))
    {
        Some((group, f)) => (Some(group), f),
        None => (None, filter),
    }
}

/// Number of levels of a topic or filter (`a/b` has 2, `/` has 2, `a` has 1).
pub fn level_count(s: &str) -> usize {
    s.bytes().filter(|&b| b == b'/').count() + 1
}

/// Does the (valid, non-shared) `filter` match the topic name `topic` (4.7)?
///
/// `+` matches exactly one level (possibly empty), `#` the parent level and any number of
/// levels below it, and a topic starting with `$` is not matched by a filter starting with a
/// wildcard (4.7.2). Allocation-free.
pub fn matches(filter: &str, topic: &str) -> bool {
    let (f, t) = (filter.as_bytes(), topic.as_bytes());
    if t.first() == Some(&b'$') && matches!(f.first(), Some(b'+' | b'#')) {
        return false;
    }
    let mut fl = f.split(|&b| b == b'/');
    let mut tl = t.split(|&b| b == b'/');
    loop {
        match (fl.next(), tl.next()) {
            (Some(b"#"), _) => return true,
            (Some(b"+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}
