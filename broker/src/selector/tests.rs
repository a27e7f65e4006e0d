use bytes::Bytes;
use shoal_amqp::{Body, Header, MessageBuilder, Symbol, Value};

use super::*;

fn msg(props: Vec<(&str, Value)>) -> Bytes {
    MessageBuilder {
        header: Some(Header {
            durable: true,
            priority: 7,
            ..Header::default()
        }),
        message_id: Some(Value::String("id-1".into())),
        subject: Some("order".into()),
        application_properties: props.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        body: Body::Data(Bytes::from_static(b"body")),
        ..MessageBuilder::default()
    }
    .to_bytes()
}

fn sample() -> Bytes {
    msg(vec![
        ("color", Value::String("red".into())),
        ("size", Value::Int(10)),
        ("weight", Value::Double(2.5)),
        ("urgent", Value::Bool(true)),
        ("region", Value::String("eu_west".into())),
    ])
}

fn check(selector: &str) -> bool {
    Selector::parse(selector)
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .matches(&sample())
}

#[test]
fn comparisons_and_logic() {
    assert!(check("color = 'red'"));
    assert!(!check("color = 'blue'"));
    assert!(check("color <> 'blue'"));
    assert!(check("size > 5 AND size <= 10"));
    assert!(!check("size > 5 AND size < 10"));
    assert!(check("size < 5 OR urgent = TRUE"));
    assert!(check("NOT (size < 5)"));
    assert!(check("weight > 2 AND weight < 3.0"));
    assert!(check("size = 10.0"), "numbers compare across int and float");
    assert!(check(
        "size * 2 + 1 = 21 AND -size = 0 - 10 AND size / 4 = 2"
    ));
    assert!(check("urgent"));
    assert!(check(
        "(color = 'red' or color = 'green') and not urgent = false"
    ));
}

#[test]
fn missing_properties_are_unknown() {
    assert!(!check("missing = 1"));
    assert!(!check("NOT missing = 1"), "NOT unknown is unknown");
    assert!(check("missing IS NULL"));
    assert!(check("color IS NOT NULL"));
    assert!(check("missing = 1 OR size = 10"));
    assert!(!check("missing = 1 AND size = 10"));
    assert!(!check("color > 'a'"), "strings only compare for equality");
    assert!(!check("color = 1"));
}

#[test]
fn like_between_in() {
    assert!(check("color LIKE 'r%'"));
    assert!(check("color LIKE '_e_'"));
    assert!(!check("color LIKE 'r_'"));
    assert!(check("color NOT LIKE 'b%'"));
    assert!(check("region LIKE 'eu\\_%' ESCAPE '\\'"));
    assert!(!check("color LIKE 'eu\\_%' ESCAPE '\\'"));
    assert!(check("size BETWEEN 5 AND 10"));
    assert!(!check("size NOT BETWEEN 5 AND 10"));
    assert!(check("color IN ('green', 'red')"));
    assert!(!check("color NOT IN ('green', 'red')"));
    assert!(!check("missing IN ('x')"));
}

#[test]
fn headers_and_properties() {
    assert!(check("JMSPriority = 7"));
    assert!(check("JMSDeliveryMode = 'PERSISTENT'"));
    assert!(check("JMSMessageID = 'id-1'"));
    assert!(check("JMSType = 'order'"));
    assert!(check("JMSCorrelationID IS NULL"));
}

#[test]
fn strings_with_quotes() {
    let m = msg(vec![("name", Value::String("O'Brien".into()))]);
    assert!(Selector::parse("name = 'O''Brien'").unwrap().matches(&m));
}

#[test]
fn bad_selectors_are_errors() {
    for bad in [
        "",
        "color =",
        "color = 'red",
        "(size > 1",
        "size > 1)",
        "color LIKE 5",
        "size # 3",
        "NOT",
        "color IN 'a'",
        "a AND AND b",
        "size NOT 5",
    ] {
        assert!(Selector::parse(bad).is_err(), "{bad:?} parsed");
    }
    let deep = format!("{}a = 1{}", "(".repeat(100), ")".repeat(100));
    assert!(Selector::parse(&deep).is_err());
    let long = vec!["a = 1"; 600].join(" AND ");
    assert!(Selector::parse(&long).is_err());
}

#[test]
fn like_is_not_exponential() {
    let m = msg(vec![("s", Value::String("a".repeat(2000)))]);
    let s = Selector::parse("s LIKE '%a%a%a%a%a%a%a%a%a%a%b'").unwrap();
    assert!(!s.matches(&m));
}

#[test]
fn filters_name_the_selector() {
    let filter = vec![(
        Symbol::from("jms-selector"),
        Value::Described(
            Box::new(Value::Symbol(SELECTOR_FILTER.into())),
            Box::new(Value::String("size > 3".into())),
        ),
    )];
    let s = Selector::from_filter(Some(&filter)).unwrap().unwrap();
    assert!(s.matches(&sample()));
    let by_code = vec![(
        Symbol::from("x"),
        Value::Described(
            Box::new(Value::Ulong(SELECTOR_FILTER_CODE)),
            Box::new(Value::String("size > 30".into())),
        ),
    )];
    let s = Selector::from_filter(Some(&by_code)).unwrap().unwrap();
    assert!(!s.matches(&sample()));
    let other = vec![(Symbol::from("x"), Value::String("y".into()))];
    assert_eq!(Selector::from_filter(Some(&other)).unwrap(), None);
    assert_eq!(Selector::from_filter(None).unwrap(), None);
    let broken = vec![(
        Symbol::from("x"),
        Value::Described(
            Box::new(Value::Symbol(SELECTOR_FILTER.into())),
            Box::new(Value::String("size >".into())),
        ),
    )];
    assert!(Selector::from_filter(Some(&broken)).is_err());
}

#[test]
fn unreadable_messages_do_not_match() {
    let s = Selector::parse("a IS NULL").unwrap();
    assert!(!s.matches(b"\x00\x53"));
}
