//! [`TopicTree`]: subscriptions keyed by filter, looked up by topic name.

use std::collections::HashMap;

use super::{level_count, validate_plain_filter, MAX_LEVELS};
use crate::error::Error;

/// A trie of topic filters, one node per level, with the subscribers (`T`, e.g. a session
/// handle plus its options) stored at the node where their filter ends.
///
/// Lookup walks the topic's levels once, following the exact child, the `+` child and
/// collecting `#` subscribers on the way; it borrows the levels from the topic string and
/// allocates nothing. Each `(filter, subscriber)` pair that matches is reported once; a
/// subscriber with several overlapping filters is reported once per filter (MQTT 5 lets the
/// server deliver one copy per subscription or merge them: that choice is the caller's).
///
/// Filters here are plain: strip a `$share/{group}/` prefix with
/// [`split_shared`](super::split_shared) first and keep the group in `T`.
#[derive(Debug)]
pub struct TopicTree<T> {
    root: Node<T>,
    len: usize,
}

#[derive(Debug)]
struct Node<T> {
    children: HashMap<Box<str>, Node<T>>,
    /// The `+` child, kept apart so that lookup does not hash "+" at every level.
    plus: Option<Box<Node<T>>>,
    /// Subscribers of `<path to here>/#`.
    hash: Vec<T>,
    /// Subscribers whose filter ends exactly here.
    here: Vec<T>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            children: HashMap::new(),
            plus: None,
            hash: Vec::new(),
            here: Vec::new(),
        }
    }
}

impl<T> Node<T> {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.hash.is_empty()
            && self.here.is_empty()
    }
}

impl<T> Default for TopicTree<T> {
    fn default() -> Self {
        TopicTree {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<T: PartialEq> TopicTree<T> {
    pub fn new() -> TopicTree<T> {
        TopicTree::default()
    }

    /// Number of (filter, subscriber) pairs.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `value` under `filter`. An equal value already under that filter is replaced and
    /// returned (a re-SUBSCRIBE replaces the subscription, 3.8.4).
    pub fn insert(&mut self, filter: &str, value: T) -> Result<Option<T>, Error> {
        validate_plain_filter(filter.as_bytes())?;
        if level_count(filter) > MAX_LEVELS {
            return Err(Error::TooManyLevels(MAX_LEVELS));
        }
        let mut node = &mut self.root;
        let mut slot = None;
        for level in filter.split('/') {
            match level {
                "#" => {
                    slot = Some(&mut node.hash);
                    break;
                }
                "+" => node = node.plus.get_or_insert_with(Box::default),
                _ => node = node.children.entry(Box::from(level)).or_default(),
            }
        }
        let slot = match slot {
            Some(s) => s,
            None => &mut node.here,
        };
        if let Some(existing) = slot.iter_mut().find(|v| **v == value) {
            return Ok(Some(std::mem::replace(existing, value)));
        }
        slot.push(value);
        self.len += 1;
        Ok(None)
    }

    /// Removes the subscriber equal to `value` from `filter` and prunes emptied nodes.
    pub fn remove(&mut self, filter: &str, value: &T) -> Option<T> {
        // An invalid filter was never inserted; validating also keeps a stray `#` in the
        // middle from reaching another filter's `#` subscribers.
        if validate_plain_filter(filter.as_bytes()).is_err() || level_count(filter) > MAX_LEVELS {
            return None;
        }
        let removed = remove_in(&mut self.root, filter.split('/'), value);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// Calls `f` for every subscriber whose filter matches the topic name `topic`.
    pub fn for_each_match<'a>(&'a self, topic: &str, mut f: impl FnMut(&'a T)) {
        // 4.7.2: topics starting with `$` are not matched by a leading `#` or `+`.
        let skip_wild = topic.starts_with('$');
        visit(&self.root, topic.split('/'), skip_wild, &mut f);
    }

    /// Nodes below the root, to check that `remove` prunes.
    #[cfg(test)]
    pub(super) fn node_count(&self) -> usize {
        fn count<T>(n: &Node<T>) -> usize {
            n.children.values().map(|c| 1 + count(c)).sum::<usize>()
                + n.plus.as_deref().map_or(0, |p| 1 + count(p))
        }
        count(&self.root)
    }

    /// Collects the matches of [`TopicTree::for_each_match`] (allocates the result).
    pub fn matches<'a>(&'a self, topic: &str) -> Vec<&'a T> {
        let mut out = Vec::new();
        self.for_each_match(topic, |v| out.push(v));
        out
    }
}

/// Recursion is bounded by the tree's depth, which `insert` caps at `MAX_LEVELS`.
fn visit<'a, T, F: FnMut(&'a T)>(
    node: &'a Node<T>,
    mut levels: std::str::Split<'_, char>,
    skip_wild: bool,
    f: &mut F,
) {
    if !skip_wild {
        node.hash.iter().for_each(&mut *f);
    }
    match levels.next() {
        None => node.here.iter().for_each(f),
        Some(level) => {
            if let Some(child) = node.children.get(level) {
                visit(child, levels.clone(), false, f);
            }
            if let (false, Some(plus)) = (skip_wild, &node.plus) {
                visit(plus, levels, false, f);
            }
        }
    }
}

fn remove_in<T: PartialEq>(
    node: &mut Node<T>,
    mut levels: std::str::Split<'_, char>,
    value: &T,
) -> Option<T> {
    let take = |v: &mut Vec<T>| v.iter().position(|x| x == value).map(|i| v.swap_remove(i));
    match levels.next() {
        None => take(&mut node.here),
        Some("#") => take(&mut node.hash),
        Some("+") => {
            let plus = node.plus.as_mut()?;
            let removed = remove_in(plus, levels, value);
            if plus.is_empty() {
                node.plus = None;
            }
            removed
        }
        Some(level) => {
            let child = node.children.get_mut(level)?;
            let removed = remove_in(child, levels, value);
            if child.is_empty() {
                node.children.remove(level);
            }
            removed
        }
    }
}
