//! [`RetainTree`]: retained messages keyed by topic name, looked up by filter.

use std::collections::HashMap;

use super::{level_count, validate_plain_filter, validate_topic_name, MAX_LEVELS};
use crate::error::Error;

/// The inverse of [`TopicTree`](super::TopicTree): one value (the retained message) per topic
/// name, and a lookup that walks a new subscription's filter to find every retained topic it
/// matches. `+` fans out over the children of a node, `#` over a whole subtree; topics starting
/// with `$` are skipped by a leading wildcard (4.7.2).
///
/// The tree does not store topic strings beyond its per-level keys: a value that needs its
/// topic (a retained PUBLISH does) carries it.
#[derive(Debug)]
pub struct RetainTree<V> {
    root: Node<V>,
    len: usize,
}

#[derive(Debug)]
struct Node<V> {
    children: HashMap<Box<str>, Node<V>>,
    value: Option<V>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node {
            children: HashMap::new(),
            value: None,
        }
    }
}

impl<V> Default for RetainTree<V> {
    fn default() -> Self {
        RetainTree {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<V> RetainTree<V> {
    pub fn new() -> RetainTree<V> {
        RetainTree::default()
    }

    /// Number of retained topics.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores `value` as the retained message of `topic`, returning the one it replaces. (A
    /// retained PUBLISH with an empty payload means "delete": call [`RetainTree::remove`].)
    pub fn insert(&mut self, topic: &str, value: V) -> Result<Option<V>, Error> {
        validate_topic_name(topic.as_bytes())?;
        if level_count(topic) > MAX_LEVELS {
            return Err(Error::TooManyLevels(MAX_LEVELS));
        }
        let mut node = &mut self.root;
        for level in topic.split('/') {
            node = node.children.entry(Box::from(level)).or_default();
        }
        let old = node.value.replace(value);
        if old.is_none() {
            self.len += 1;
        }
        Ok(old)
    }

    pub fn get(&self, topic: &str) -> Option<&V> {
        let mut node = &self.root;
        for level in topic.split('/') {
            node = node.children.get(level)?;
        }
        node.value.as_ref()
    }

    /// Deletes the retained message of `topic` and prunes emptied nodes.
    pub fn remove(&mut self, topic: &str) -> Option<V> {
        if topic.is_empty() || level_count(topic) > MAX_LEVELS {
            return None;
        }
        let old = remove_in(&mut self.root, topic.split('/'));
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Calls `f` for every retained message whose topic matches the non-shared `filter`; an
    /// invalid filter matches nothing.
    pub fn for_each_match<'a>(&'a self, filter: &str, mut f: impl FnMut(&'a V)) {
        if validate_plain_filter(filter.as_bytes()).is_err() {
            return;
        }
        visit(&self.root, filter.split('/'), true, &mut f);
    }

    /// Nodes below the root, to check that `remove` prunes.
    #[cfg(test)]
    pub(super) fn node_count(&self) -> usize {
        fn count<V>(n: &Node<V>) -> usize {
            n.children.values().map(|c| 1 + count(c)).sum()
        }
        count(&self.root)
    }

    /// Collects the matches of [`RetainTree::for_each_match`].
    pub fn matches<'a>(&'a self, filter: &str) -> Vec<&'a V> {
        let mut out = Vec::new();
        self.for_each_match(filter, |v| out.push(v));
        out
    }
}

/// Recursion is bounded by the tree's depth (at most `MAX_LEVELS`), not by the filter's.
fn visit<'a, V, F: FnMut(&'a V)>(
    node: &'a Node<V>,
    mut levels: std::str::Split<'_, char>,
    root: bool,
    f: &mut F,
) {
    match levels.next() {
        None => {
            if let Some(v) = &node.value {
                f(v);
            }
        }
        Some("#") => visit_all(node, root, f),
        Some("+") => {
            for (key, child) in &node.children {
                if !(root && key.starts_with('$')) {
                    visit(child, levels.clone(), false, f);
                }
            }
        }
        Some(level) => {
            if let Some(child) = node.children.get(level) {
                visit(child, levels, false, f);
            }
        }
    }
}

/// `#`: this node (the parent level) and everything below it.
fn visit_all<'a, V, F: FnMut(&'a V)>(node: &'a Node<V>, root: bool, f: &mut F) {
    if let Some(v) = &node.value {
        f(v);
    }
    for (key, child) in &node.children {
        if !(root && key.starts_with('$')) {
            visit_all(child, false, f);
        }
    }
}

fn remove_in<V>(node: &mut Node<V>, mut levels: std::str::Split<'_, char>) -> Option<V> {
    match levels.next() {
        None => node.value.take(),
        Some(level) => {
            let child = node.children.get_mut(level)?;
            let old = remove_in(child, levels);
            if child.value.is_none() && child.children.is_empty() {
                node.children.remove(level);
            }
            old
        }
    }
}
