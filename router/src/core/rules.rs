//! The address rule table: which distribution an address string gets.
//!
//! Lookup order, most specific first: an exact rule; then the longest matching prefix; then the pattern with the
//! most literal segments (ties broken by rule name, so the answer never depends on insertion order); then the
//! configured default. Lookups happen once per address (when its first link attaches or the rules change), never
//! per message.

use std::collections::BTreeMap;

use crate::config::{AddressRule, Distribution, Matcher};

#[derive(Debug)]
pub struct Rules {
    by_name: BTreeMap<String, AddressRule>,
    default: Distribution,
}

impl Rules {
    pub fn new(default: Distribution) -> Rules {
        Rules {
            by_name: BTreeMap::new(),
            default,
        }
    }

    pub fn set(&mut self, rule: AddressRule) {
        self.by_name.insert(rule.name.clone(), rule);
    }

    pub fn remove(&mut self, name: &str) -> bool {
        self.by_name.remove(name).is_some()
    }

    pub fn list(&self) -> Vec<AddressRule> {
        self.by_name.values().cloned().collect()
    }

    /// The distribution for `address`, and the rule that decided it (if any).
    pub fn lookup(&self, address: &str) -> (Distribution, Option<&AddressRule>) {
        let mut best: Option<(Rank, &AddressRule)> = None;
        for rule in self.by_name.values() {
            let Some(rank) = rank(&rule.matcher, address) else {
                continue;
            };
            // Strictly greater wins; BTreeMap order makes ties go to the first name.
            if best.as_ref().is_none_or(|(r, _)| rank > *r) {
                best = Some((rank, rule));
            }
        }
        match best {
            Some((_, rule)) => (rule.distribution, Some(rule)),
            None => (self.default, None),
        }
    }
}

/// How specific a match is: exact beats prefix beats pattern; longer prefixes and patterns with more literal
/// segments beat shorter ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Pattern { literals: usize },
    Prefix { len: usize },
    Exact,
}

fn rank(matcher: &Matcher, address: &str) -> Option<Rank> {
    match matcher {
        Matcher::Exact(a) => (a == address).then_some(Rank::Exact),
        Matcher::Prefix(p) => prefix_matches(p, address).then_some(Rank::Prefix { len: p.len() }),
        Matcher::Pattern(p) => pattern_matches(p, address).then(|| Rank::Pattern {
            literals: segments(p).filter(|s| *s != "*" && *s != "#").count(),
        }),
    }
}

fn is_separator(c: char) -> bool {
    c == '/' || c == '.'
}

fn segments(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_separator)
}

/// `prefix` matches itself and anything below it at a segment boundary (`a/b` matches `a/b/c`, not `a/bc`).
pub fn prefix_matches(prefix: &str, address: &str) -> bool {
    match address.strip_prefix(prefix) {
        Some("") => true,
        Some(rest) => rest.starts_with(is_separator) || prefix.ends_with(is_separator),
        None => false,
    }
}

/// `*` matches exactly one segment, `#` zero or more.
pub fn pattern_matches(pattern: &str, address: &str) -> bool {
    let pat: Vec<&str> = segments(pattern).collect();
    let addr: Vec<&str> = segments(address).collect();
    // reachable[j]: the pattern prefix processed so far can consume exactly addr[..j].
    let mut reachable = vec![false; addr.len() + 1];
    reachable[0] = true;
    for p in &pat {
        let mut next = vec![false; addr.len() + 1];
        for j in 0..=addr.len() {
            if !reachable[j] {
                continue;
            }
            match *p {
                "#" => next[j..].iter_mut().for_each(|n| *n = true),
                "*" if j < addr.len() => next[j + 1] = true,
                lit if j < addr.len() && addr[j] == lit => next[j + 1] = true,
                _ => {}
            }
        }
        reachable = next;
    }
    reachable[addr.len()]
}

/// Whether an address string is a pattern (has a `*` or `#` segment).
pub fn is_pattern(address: &str) -> bool {
    segments(address).any(|s| s == "*" || s == "#")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, matcher: Matcher, distribution: Distribution) -> AddressRule {
        AddressRule {
            name: name.into(),
            matcher,
            distribution,
            link_route: None,
        }
    }

    #[test]
    fn patterns_match_segments() {
        assert!(pattern_matches("sensors/#", "sensors"));
        assert!(pattern_matches("sensors/#", "sensors/room1/temp"));
        assert!(pattern_matches("sensors/*/temp", "sensors/room1/temp"));
        assert!(!pattern_matches("sensors/*/temp", "sensors/a/b/temp"));
        assert!(pattern_matches("sensors.*.temp", "sensors/room1.temp"));
        assert!(pattern_matches("#/alarm", "a/b/alarm"));
        assert!(pattern_matches("#/alarm", "alarm"));
        assert!(!pattern_matches("a/*", "a"));
        assert!(!pattern_matches("sensors/#", "sensorsX/1"));
        assert!(pattern_matches("a/#/z", "a/z"));
        assert!(pattern_matches("a/#/z", "a/b/c/z"));
        assert!(!pattern_matches("a/#/z", "a/b/c"));
    }

    #[test]
    fn prefixes_match_at_segment_boundaries() {
        assert!(prefix_matches("orders", "orders"));
        assert!(prefix_matches("orders", "orders/eu"));
        assert!(prefix_matches("orders", "orders.eu"));
        assert!(!prefix_matches("orders", "ordersX"));
        assert!(prefix_matches("orders/", "orders/eu"));
    }

    #[test]
    fn most_specific_rule_wins() {
        let mut rules = Rules::new(Distribution::Balanced);
        rules.set(rule(
            "p",
            Matcher::Pattern("a/#".into()),
            Distribution::Multicast,
        ));
        rules.set(rule(
            "q",
            Matcher::Pattern("a/*/c".into()),
            Distribution::Closest,
        ));
        rules.set(rule(
            "pre",
            Matcher::Prefix("a/b".into()),
            Distribution::Multicast,
        ));
        rules.set(rule(
            "ex",
            Matcher::Exact("a/b/c".into()),
            Distribution::Balanced,
        ));
        assert_eq!(rules.lookup("a/b/c").0, Distribution::Balanced);
        assert_eq!(rules.lookup("a/b/d").0, Distribution::Multicast);
        assert_eq!(rules.lookup("a/x/c").0, Distribution::Closest);
        assert_eq!(rules.lookup("a/x").0, Distribution::Multicast);
        assert_eq!(rules.lookup("zzz").0, Distribution::Balanced);
        assert!(rules.lookup("zzz").1.is_none());
        assert!(rules.remove("q"));
        assert_eq!(rules.lookup("a/x/c").0, Distribution::Multicast);
    }
}
