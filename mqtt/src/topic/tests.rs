use super::*;

#[test]
fn spec_matching_table() {
    // 4.7.1.2 multi-level wildcard.
    let f = "sport/tennis/player1/#";
    assert!(matches(f, "sport/tennis/player1"));
    assert!(matches(f, "sport/tennis/player1/ranking"));
    assert!(matches(f, "sport/tennis/player1/score/wimbledon"));
    assert!(!matches(f, "sport/tennis/player2"));
    assert!(!matches(f, "sport/tennis"));
    assert!(matches("sport/#", "sport"));
    assert!(matches("#", "sport/tennis"));
    // 4.7.1.3 single-level wildcard.
    let f = "sport/tennis/+";
    assert!(matches(f, "sport/tennis/player1"));
    assert!(matches(f, "sport/tennis/player2"));
    assert!(!matches(f, "sport/tennis/player1/ranking"));
    assert!(!matches("sport/+", "sport"));
    assert!(matches("sport/+", "sport/"));
    assert!(matches("+/+", "/finance"));
    assert!(matches("/+", "/finance"));
    assert!(!matches("+", "/finance"));
    assert!(matches("+/tennis/#", "sport/tennis/player1"));
    assert!(matches("sport/+/player1", "sport/tennis/player1"));
    // 4.7.2 topics beginning with $.
    assert!(!matches("#", "$SYS/monitor/Clients"));
    assert!(!matches("+/monitor/Clients", "$SYS/monitor/Clients"));
    assert!(matches("$SYS/#", "$SYS/monitor/Clients"));
    assert!(matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
    // 4.7.3 case sensitive, spaces allowed, exact levels.
    assert!(!matches("ACCOUNTS", "Accounts"));
    assert!(matches("Accounts payable", "Accounts payable"));
    assert!(!matches("a/b", "a/b/"));
    assert!(!matches("a/b/", "a/b"));
    assert!(matches("a//b", "a//b"));
}

#[test]
fn spec_filter_validity() {
    for ok in [
        "#",
        "+",
        "sport/tennis/#",
        "+/tennis/#",
        "sport/+/player1",
        "/",
        "a//b",
        "$SYS/#",
        "$share/g/a/#",
        "$share/g/+",
        "$share/g//",
    ] {
        assert_eq!(validate_topic_filter(ok.as_bytes()), Ok(()), "{ok}");
    }
    for bad in [
        "",
        "sport/tennis#",
        "sport/tennis/#/ranking",
        "sport+",
        "#/a",
        "a/b#",
        "$share/g",
        "$share/g/",
        "$share//a",
        "$share/+/a",
        "$share/g#/a",
    ] {
        assert!(
            matches!(
                validate_topic_filter(bad.as_bytes()),
                Err(Error::InvalidTopicFilter(_))
            ),
            "{bad}"
        );
    }
    assert_eq!(validate_topic_name(b"a/b"), Ok(()));
    assert_eq!(validate_topic_name(b"$SYS/x"), Ok(()));
    assert_eq!(validate_topic_name(b""), Err(Error::EmptyTopicName));
    assert_eq!(validate_topic_name(b"a/+"), Err(Error::WildcardInTopicName));
}

#[test]
fn shared_subscription_parsing() {
    assert_eq!(split_shared("$share/g/a/+"), (Some("g"), "a/+"));
    assert_eq!(split_shared("$share/g/#"), (Some("g"), "#"));
    assert_eq!(split_shared("a/+"), (None, "a/+"));
    assert_eq!(split_shared("$shared/g/a"), (None, "$shared/g/a"));
    assert_eq!(level_count("a"), 1);
    assert_eq!(level_count("/"), 2);
    assert_eq!(level_count("a/b/c"), 3);
}

/// xorshift64*
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }

    fn path(&mut self, levels: &[&str], wild: bool) -> String {
        let n = 1 + (self.next() % 4) as usize;
        let mut parts: Vec<&str> = Vec::new();
        for i in 0..n {
            let mut l = self.pick(levels);
            if wild && self.next() & 3 == 0 {
                l = if i == n - 1 && self.next() & 1 == 0 {
                    "#"
                } else {
                    "+"
                };
            }
            parts.push(l);
        }
        parts.join("/")
    }
}

const LEVELS: &[&str] = &["a", "b", "", "$x", "sport"];

#[test]
fn topic_tree_agrees_with_matches() {
    let mut rng = Rng(7);
    let mut tree = TopicTree::new();
    let mut filters: Vec<(String, u32)> = Vec::new();
    for id in 0..300u32 {
        let f = rng.path(LEVELS, true);
        if validate_topic_filter(f.as_bytes()).is_err() {
            continue;
        }
        assert_eq!(tree.insert(&f, id), Ok(None));
        filters.push((f, id));
    }
    assert_eq!(tree.len(), filters.len());
    let check = |tree: &TopicTree<u32>, filters: &[(String, u32)], rng: &mut Rng| {
        for _ in 0..500 {
            let topic = rng.path(LEVELS, false);
            let mut got: Vec<u32> = tree.matches(&topic).into_iter().copied().collect();
            got.sort_unstable();
            let mut want: Vec<u32> = filters
                .iter()
                .filter(|(f, _)| matches(f, &topic))
                .map(|(_, id)| *id)
                .collect();
            want.sort_unstable();
            assert_eq!(got, want, "topic {topic:?}");
        }
    };
    check(&tree, &filters, &mut rng);
    // Remove every other subscription, check again, then remove the rest.
    let (gone, kept): (Vec<_>, Vec<_>) = filters.into_iter().partition(|(_, id)| id % 2 == 0);
    for (f, id) in &gone {
        assert_eq!(tree.remove(f, id), Some(*id));
        assert_eq!(tree.remove(f, id), None);
    }
    check(&tree, &kept, &mut rng);
    for (f, id) in &kept {
        assert_eq!(tree.remove(f, id), Some(*id));
    }
    assert!(tree.is_empty());
    assert_eq!(tree.node_count(), 0, "emptied nodes are pruned");
    // A misplaced `#` never reaches another filter's subscribers.
    tree.insert("a/#", 1).expect("valid");
    assert_eq!(tree.remove("a/#/b", &1), None);
    assert_eq!(tree.len(), 1);
}

#[test]
fn topic_tree_replaces_equal_subscribers_and_limits_depth() {
    #[derive(Debug)]
    struct Sub(&'static str, u8);
    impl PartialEq for Sub {
        // Same session = same subscription; the QoS may change.
        fn eq(&self, other: &Sub) -> bool {
            self.0 == other.0
        }
    }
    let mut tree = TopicTree::new();
    assert_eq!(tree.insert("a/+", Sub("s1", 0)), Ok(None));
    let old = tree.insert("a/+", Sub("s1", 2)).expect("valid");
    assert_eq!(old.map(|s| s.1), Some(0));
    assert_eq!(tree.len(), 1);
    assert_eq!(tree.matches("a/b")[0].1, 2);
    assert_eq!(
        tree.insert("a/#/b", Sub("s2", 0)),
        Err(Error::InvalidTopicFilter(
            "'#' must be a whole level and the last one"
        ))
    );
    let deep = vec!["x"; MAX_LEVELS + 1].join("/");
    assert_eq!(
        tree.insert(&deep, Sub("s3", 0)),
        Err(Error::TooManyLevels(MAX_LEVELS))
    );
    let ok = vec!["x"; MAX_LEVELS].join("/");
    assert_eq!(tree.insert(&ok, Sub("s3", 0)), Ok(None));
    // A topic far deeper than the tree is walked only as deep as the tree goes.
    let very_deep = vec!["x"; 30_000].join("/");
    assert!(tree.matches(&very_deep).is_empty());
    assert_eq!(tree.matches(&ok).len(), 1);
}

#[test]
fn retain_tree_agrees_with_matches() {
    let mut rng = Rng(11);
    let mut store = RetainTree::new();
    let mut topics: Vec<String> = Vec::new();
    for _ in 0..200 {
        let t = rng.path(LEVELS, false);
        if t.is_empty() {
            assert_eq!(store.insert(&t, t.clone()), Err(Error::EmptyTopicName));
            continue;
        }
        if store.insert(&t, t.clone()).expect("valid topic").is_none() {
            topics.push(t);
        }
    }
    assert_eq!(store.len(), topics.len());
    for t in &topics {
        assert_eq!(store.get(t), Some(t));
    }
    for _ in 0..500 {
        let f = rng.path(LEVELS, true);
        if validate_topic_filter(f.as_bytes()).is_err() {
            continue;
        }
        let mut got: Vec<&String> = store.matches(&f);
        got.sort();
        let mut want: Vec<&String> = topics.iter().filter(|t| matches(&f, t)).collect();
        want.sort();
        assert_eq!(got, want, "filter {f:?}");
    }
    for t in &topics {
        assert_eq!(store.remove(t).as_ref(), Some(t));
        assert_eq!(store.remove(t), None);
    }
    assert!(store.is_empty());
    assert_eq!(store.node_count(), 0, "emptied nodes are pruned");
    assert_eq!(
        store.insert("a/+", String::new()),
        Err(Error::WildcardInTopicName)
    );
    store.insert("a/b", "a/b".to_string()).expect("valid");
    assert!(
        store.matches("a/#/x").is_empty(),
        "invalid filters match nothing"
    );
    assert_eq!(store.matches("a/#").len(), 1);
}
