//! What a consumer's outcome does: released, modified, rejected, and running out of attempts.

use shoal_amqp::{DeliveryState, Value};
use shoal_broker::annotations::{DEAD_LETTER_REASON, ORIGINAL_ADDRESS};
use shoal_broker::{AddressSettings, BrokerAddress, BrokerConfig};

use crate::support::*;

fn with_dlq(max_attempts: u32) -> BrokerConfig {
    let settings = AddressSettings {
        dead_letter_address: Some("dlq".into()),
        max_delivery_attempts: max_attempts,
        ..AddressSettings::default()
    };
    BrokerConfig {
        addresses: vec![
            BrokerAddress::queue("q").with_settings(settings),
            BrokerAddress::queue("dlq"),
        ],
        ..BrokerConfig::default()
    }
}

fn annotation(r: &shoal_client::Received, key: &str) -> Option<Value> {
    r.message()
        .unwrap()
        .message_annotations
        .into_iter()
        .find(|(k, _)| k.as_str() == key)
        .map(|(_, v)| v)
}

#[tokio::test]
async fn released_comes_back_first_with_the_same_delivery_count() {
    let b = start(with_dlq(3)).await;
    let conn = b.connect().await;
    let s = sender(&conn, "q").await;
    send_accepted(&s, &["a", "b"]).await;
    let r = conn.receiver("q", 1).await.unwrap();
    let a = recv(&r).await;
    assert_eq!(text(&a), "a");
    r.release(&a).await.unwrap();
    r.flow(1).await.unwrap();
    let again = recv(&r).await;
    assert_eq!(text(&again), "a", "released goes back to the front");
    assert_eq!(
        delivery_count(&again),
        0,
        "a release is not a failed attempt"
    );
    r.accept(&again).await.unwrap();
    r.flow(1).await.unwrap();
    assert_eq!(text(&recv(&r).await), "b");
}

#[tokio::test]
async fn modified_failed_counts_an_attempt_and_dead_letters_at_the_limit() {
    let b = start(with_dlq(3)).await;
    let conn = b.connect().await;
    let s = sender(&conn, "q").await;
    send_accepted(&s, &["poison", "fine"]).await;
    let r = conn.receiver("q", 1).await.unwrap();
    for attempt in 0..3 {
        let d = recv(&r).await;
        assert_eq!(text(&d), "poison");
        assert_eq!(
            delivery_count(&d),
            attempt,
            "each failure shows in the header"
        );
        r.modify(&d, true, false).await.unwrap();
        r.flow(1).await.unwrap();
    }
    // The third failure used up the attempts: the next message is the other one.
    let d = recv(&r).await;
    assert_eq!(text(&d), "fine");
    r.accept(&d).await.unwrap();

    let dlq = conn.receiver("dlq", 5).await.unwrap();
    let dead = recv(&dlq).await;
    assert_eq!(text(&dead), "poison");
    assert_eq!(delivery_count(&dead), 3);
    assert_eq!(
        annotation(&dead, ORIGINAL_ADDRESS),
        Some(Value::String("q".into()))
    );
    assert_eq!(
        annotation(&dead, DEAD_LETTER_REASON),
        Some(Value::String("max-delivery-attempts".into()))
    );
    dlq.accept(&dead).await.unwrap();
    let stats = b.stats("q").await.unwrap();
    assert_eq!(stats.counters.dead_lettered, 1);
    assert_eq!(stats.depth, 0);
}

#[tokio::test]
async fn modified_without_failure_is_a_release() {
    let b = start(with_dlq(1)).await;
    let conn = b.connect().await;
    let s = sender(&conn, "q").await;
    send_accepted(&s, &["m"]).await;
    let r = conn.receiver("q", 1).await.unwrap();
    for _ in 0..3 {
        let d = recv(&r).await;
        assert_eq!(delivery_count(&d), 0);
        r.modify(&d, false, false).await.unwrap();
        r.flow(1).await.unwrap();
    }
    let d = recv(&r).await;
    r.accept(&d).await.unwrap();
    assert_eq!(b.stats("dlq").await.unwrap().depth, 0);
}

#[tokio::test]
async fn rejected_goes_to_the_dead_letter_address() {
    let b = start(with_dlq(10)).await;
    let conn = b.connect().await;
    let s = sender(&conn, "q").await;
    send_accepted(&s, &["bad"]).await;
    let r = conn.receiver("q", 1).await.unwrap();
    let d = recv(&r).await;
    r.reject(&d, None).await.unwrap();
    assert_empty(&r).await;

    let dlq = conn.receiver("dlq", 1).await.unwrap();
    let dead = recv(&dlq).await;
    assert_eq!(text(&dead), "bad");
    assert_eq!(
        annotation(&dead, DEAD_LETTER_REASON),
        Some(Value::String("rejected".into()))
    );
    assert_eq!(
        annotation(&dead, ORIGINAL_ADDRESS),
        Some(Value::String("q".into()))
    );
}

#[tokio::test]
async fn without_a_dead_letter_address_it_is_dropped_and_counted() {
    let b = start(queue_q()).await;
    let conn = b.connect().await;
    let s = sender(&conn, "q").await;
    send_accepted(&s, &["bad", "good"]).await;
    let r = conn.receiver("q", 1).await.unwrap();
    let d = recv(&r).await;
    r.settle(&d, DeliveryState::Rejected { error: None })
        .await
        .unwrap();
    r.flow(1).await.unwrap();
    assert_eq!(text(&recv(&r).await), "good");
    let stats = b.stats("q").await.unwrap();
    assert_eq!(stats.counters.dead_lettered, 1);
    assert_eq!(stats.counters.dropped, 1);
}
