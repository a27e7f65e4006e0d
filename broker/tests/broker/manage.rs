//! The queue-management node (`$shoal/queues`): system queues declared and deleted with messages, answered by
//! the outcome.

use shoal_amqp::{condition, DeliveryState, MessageBuilder, Value};
use shoal_broker::manage::{ADDRESS, DECLARE, DELETE, MANAGE_ADDRESS, OPERATION};
use shoal_broker::BrokerConfig;

use crate::support::*;

fn request(operation: &str, address: &str) -> MessageBuilder {
    MessageBuilder {
        application_properties: vec![
            (OPERATION.into(), Value::String(operation.into())),
            (ADDRESS.into(), Value::String(address.into())),
        ],
        ..MessageBuilder::default()
    }
}

async fn outcome(s: &shoal_client::Sender, m: &MessageBuilder) -> DeliveryState {
    let d = s.send(m, false).await.expect("send");
    tokio::time::timeout(WAIT, d.outcome())
        .await
        .expect("outcome in time")
        .expect("outcome")
}

#[tokio::test]
async fn a_declared_system_queue_keeps_messages_across_a_restart_until_it_is_deleted() {
    let b = start(BrokerConfig::default()).await;
    let conn = b.connect().await;
    let manage = sender(&conn, MANAGE_ADDRESS).await;
    let queue = "$mqtt/session/acme/dev1";
    assert_eq!(
        outcome(&manage, &request(DECLARE, queue)).await,
        DeliveryState::Accepted
    );
    // Declaring again keeps what the queue holds.
    let s = sender(&conn, queue).await;
    send_accepted(&s, &["kept"]).await;
    assert_eq!(
        outcome(&manage, &request(DECLARE, queue)).await,
        DeliveryState::Accepted
    );
    assert_eq!(b.stats(queue).await.unwrap().depth, 1);
    conn.close().await.unwrap();

    // Accepted means stored: the queue and its message survive a restart.
    let b = b.restart().await;
    let conn = b.connect().await;
    let r = conn.receiver(queue, 10).await.unwrap();
    let got = recv(&r).await;
    assert_eq!(text(&got), "kept");
    r.accept(&got).await.unwrap();
    drop(r);

    let manage = sender(&conn, MANAGE_ADDRESS).await;
    assert_eq!(
        outcome(&manage, &request(DELETE, queue)).await,
        DeliveryState::Accepted
    );
    assert!(b.stats(queue).await.is_none());
    let e = conn.receiver(queue, 1).await.unwrap_err();
    assert_eq!(e.condition(), Some(condition::NOT_FOUND));
    // Deleting what is not there is accepted too (a retried request must not fail).
    assert_eq!(
        outcome(&manage, &request(DELETE, queue)).await,
        DeliveryState::Accepted
    );
    let b = b.restart().await;
    assert!(b.stats(queue).await.is_none(), "the deletion is stored");
}

#[tokio::test]
async fn a_request_for_a_user_address_or_without_its_fields_is_rejected_and_changes_nothing() {
    let b = start(BrokerConfig::default()).await;
    let conn = b.connect().await;
    let manage = sender(&conn, MANAGE_ADDRESS).await;
    let rejected = |state: DeliveryState| match state {
        DeliveryState::Rejected { error: Some(e) } => e,
        other => panic!("expected a rejection, got {other:?}"),
    };
    let e = rejected(outcome(&manage, &request(DECLARE, "orders")).await);
    assert_eq!(e.condition.as_str(), condition::INVALID_FIELD);
    assert!(b.stats("orders").await.is_none());
    let e = rejected(outcome(&manage, &request("purge", "$q")).await);
    assert!(format!("{e:?}").contains("unknown operation"), "{e:?}");
    let e = rejected(outcome(&manage, &MessageBuilder::default()).await);
    assert!(format!("{e:?}").contains("`operation`"), "{e:?}");
    assert!(b.stats("$q").await.is_none());
    // The link stays usable after a bad request.
    assert_eq!(
        outcome(&manage, &request(DECLARE, "$q")).await,
        DeliveryState::Accepted
    );
    assert!(b.stats("$q").await.is_some());
}
