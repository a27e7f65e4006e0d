//! The client against the real router, in-process.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use shoal_amqp::{condition, AmqpError, Body, DeliveryState, MessageBuilder, Performative, Value};
use shoal_client::{ClientError, ConnectOptions, Connection, ReceiverOptions, Sasl, SenderOptions};
use shoal_router::{AuthConfig, Router, RouterConfig};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

async fn start_with(config: RouterConfig) -> (Router, SocketAddr) {
    let mut router = Router::start(config);
    let bound = router
        .listen("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    (router, bound.local_addr)
}

async fn start() -> (Router, SocketAddr) {
    start_with(RouterConfig::default()).await
}

async fn connect(addr: SocketAddr) -> Connection {
    Connection::connect(addr, ConnectOptions::default())
        .await
        .unwrap()
}

fn text(s: &str) -> MessageBuilder {
    MessageBuilder {
        body: Body::Value(Value::String(s.into())),
        ..Default::default()
    }
}

#[tokio::test]
async fn send_receive_and_outcomes() {
    let (_router, addr) = start().await;
    let conn = connect(addr).await;
    let receiver = conn.receiver("q/outcomes", 10).await.unwrap();
    let sender = conn
        .sender(Some("q/outcomes"), SenderOptions::default())
        .await
        .unwrap();
    timeout(WAIT, sender.wait_credit(1)).await.unwrap().unwrap();

    let a = sender.send(&text("a"), false).await.unwrap();
    let b = sender.send(&text("b"), false).await.unwrap();
    let c = sender.send(&text("c"), true).await.unwrap();
    assert!(c.is_settled());

    let ra = timeout(WAIT, receiver.recv()).await.unwrap().unwrap();
    let rb = timeout(WAIT, receiver.recv()).await.unwrap().unwrap();
    let rc = timeout(WAIT, receiver.recv()).await.unwrap().unwrap();
    assert_eq!(
        ra.message().unwrap().body,
        Body::Value(Value::String("a".into()))
    );
    assert_eq!(
        rb.message().unwrap().body,
        Body::Value(Value::String("b".into()))
    );
    assert!(!ra.settled && !rb.settled);
    assert!(rc.settled, "a presettled send arrives settled");
    assert_eq!(receiver.credit(), 7);

    receiver.accept(&ra).await.unwrap();
    let error = AmqpError::new(condition::PRECONDITION_FAILED, "no thanks");
    receiver.reject(&rb, Some(error.clone())).await.unwrap();
    assert_eq!(
        timeout(WAIT, a.outcome()).await.unwrap().unwrap(),
        DeliveryState::Accepted
    );
    assert_eq!(
        timeout(WAIT, b.outcome()).await.unwrap().unwrap(),
        DeliveryState::Rejected { error: Some(error) }
    );
    assert!(matches!(c.outcome().await, Err(ClientError::Presettled)));

    sender.close().await.unwrap();
    receiver.close().await.unwrap();
    conn.close().await.unwrap();
    assert!(matches!(conn.error(), Some(ClientError::ConnectionClosed)));
}

/// Ten thousand unsettled sends in flight at once, received with auto-replenished credit.
#[tokio::test]
async fn pipelines_ten_thousand_sends() {
    const N: usize = 10_000;
    let (_router, addr) = start().await;
    let rconn = connect(addr).await;
    let opts = ReceiverOptions {
        auto_replenish: true,
        ..ReceiverOptions::credit(500)
    };
    let receiver = rconn.receiver_with(Some("q/many"), opts).await.unwrap();
    let consume = tokio::spawn(async move {
        for i in 0..N {
            let r = receiver.recv().await.unwrap();
            let m = r.message().unwrap();
            assert_eq!(m.message_id, Some(Value::Ulong(i as u64)), "in order");
            receiver.accept(&r).await.unwrap();
        }
        receiver
    });
    let sconn = connect(addr).await;
    let sender = sconn
        .sender(Some("q/many"), SenderOptions::default())
        .await
        .unwrap();
    let mut deliveries = Vec::with_capacity(N);
    for i in 0..N {
        let m = MessageBuilder {
            message_id: Some(Value::Ulong(i as u64)),
            body: Body::Data(Bytes::from_static(b"payload")),
            ..Default::default()
        };
        deliveries.push(timeout(WAIT, sender.send(m, false)).await.unwrap().unwrap());
    }
    for d in deliveries {
        assert_eq!(
            timeout(WAIT, d.outcome()).await.unwrap().unwrap(),
            DeliveryState::Accepted
        );
    }
    let receiver = consume.await.unwrap();
    assert!(receiver.credit() > 0, "auto-replenish kept credit flowing");
    sconn.close().await.unwrap();
    rconn.close().await.unwrap();
}

/// 1 MiB through a receiver with 512-byte frames, and 10 MiB with the default 64 KiB frames:
/// the sender splits to the router's max frame, the router to the receiver's.
#[tokio::test]
async fn multi_frame_messages_are_split_and_reassembled() {
    let (_router, addr) = start().await;
    let small = ConnectOptions {
        max_frame_size: 512,
        ..ConnectOptions::default()
    };
    let rconn = Connection::connect(addr, small).await.unwrap();
    let receiver = rconn.receiver("q/big", 2).await.unwrap();
    let big_conn = connect(addr).await;
    let big_receiver = big_conn.receiver("q/bigger", 1).await.unwrap();
    let sconn = connect(addr).await;
    let sender = sconn.sender(None, SenderOptions::default()).await.unwrap();

    for (size, to, r) in [
        (1 << 20, "q/big", &receiver),
        (10 << 20, "q/bigger", &big_receiver),
    ] {
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let m = MessageBuilder {
            to: Some(to.into()),
            body: Body::Data(Bytes::from(data.clone())),
            ..Default::default()
        };
        let sent = m.to_bytes();
        let d = timeout(WAIT, sender.send(m, false)).await.unwrap().unwrap();
        let got = timeout(WAIT, r.recv()).await.unwrap().unwrap();
        assert_eq!(got.bytes.len(), sent.len());
        assert!(got.bytes == sent, "{size} bytes reassembled unchanged");
        assert_eq!(got.message().unwrap().body, Body::Data(Bytes::from(data)));
        r.accept(&got).await.unwrap();
        assert_eq!(
            timeout(WAIT, d.outcome()).await.unwrap().unwrap(),
            DeliveryState::Accepted
        );
    }
}

#[tokio::test]
async fn dynamic_receiver_gets_an_address() {
    let (_router, addr) = start().await;
    let conn = connect(addr).await;
    let receiver = conn.dynamic_receiver(5).await.unwrap();
    let address = receiver.address().expect("assigned address").to_owned();
    assert!(!address.is_empty());
    let other = conn.dynamic_receiver(5).await.unwrap();
    assert_ne!(other.address(), Some(address.as_str()));

    let sender = conn
        .sender(Some(&address), SenderOptions::default())
        .await
        .unwrap();
    let d = sender.send(&text("reply"), false).await.unwrap();
    let r = timeout(WAIT, receiver.recv()).await.unwrap().unwrap();
    assert_eq!(
        r.message().unwrap().body,
        Body::Value(Value::String("reply".into()))
    );
    receiver.accept(&r).await.unwrap();
    assert_eq!(
        timeout(WAIT, d.outcome()).await.unwrap().unwrap(),
        DeliveryState::Accepted
    );
    assert_eq!(other.queued(), 0);
}

#[tokio::test]
async fn drain_uses_up_credit() {
    let (_router, addr) = start().await;
    let conn = connect(addr).await;
    let receiver = conn.receiver("q/drain", 10).await.unwrap();
    let sender = conn
        .sender(Some("q/drain"), SenderOptions::default())
        .await
        .unwrap();
    timeout(WAIT, sender.wait_credit(1)).await.unwrap().unwrap();
    sender.send(&text("one"), true).await.unwrap();
    let _ = timeout(WAIT, receiver.recv()).await.unwrap().unwrap();
    assert_eq!(receiver.credit(), 9);
    let arrived = timeout(WAIT, receiver.drain()).await.unwrap().unwrap();
    assert_eq!(arrived, 0);
    assert_eq!(receiver.credit(), 0);
    // Credit granted after a drain works as before.
    receiver.flow(1).await.unwrap();
    sender.send(&text("two"), true).await.unwrap();
    let r = timeout(WAIT, receiver.recv()).await.unwrap().unwrap();
    assert_eq!(
        r.message().unwrap().body,
        Body::Value(Value::String("two".into()))
    );
}

#[tokio::test]
async fn refused_attach_reports_the_remote_error() {
    let (_router, addr) = start().await;
    let conn = connect(addr).await;
    // A receiver with neither an address nor a dynamic source has nothing to receive from.
    let err = conn
        .receiver_with(None, ReceiverOptions::credit(1))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Remote(_)), "{err:?}");
    // The connection is still usable.
    let r = conn.receiver("q/fine", 1).await.unwrap();
    assert!(r.error().is_none());
}

#[tokio::test]
async fn sasl_plain_and_failure() {
    let config = RouterConfig {
        auth: AuthConfig {
            allow_anonymous: false,
            users: [("alice".to_string(), "secret".to_string())].into(),
        },
        ..RouterConfig::default()
    };
    let (_router, addr) = start_with(config).await;
    let good = Sasl::Plain {
        user: "alice".into(),
        password: "secret".into(),
    };
    let conn = Connection::connect(addr, ConnectOptions::with_sasl(good))
        .await
        .unwrap();
    conn.close().await.unwrap();

    let bad = Sasl::Plain {
        user: "alice".into(),
        password: "wrong".into(),
    };
    let err = Connection::connect(addr, ConnectOptions::with_sasl(bad))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Sasl(shoal_amqp::SaslCode::Auth)),
        "{err:?}"
    );

    let err = Connection::connect(addr, ConnectOptions::with_sasl(Sasl::Anonymous))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::SaslMechanism { .. }), "{err:?}");
}

#[tokio::test]
async fn router_shutdown_is_a_remote_close() {
    let (router, addr) = start().await;
    let conn = connect(addr).await;
    let receiver = conn.receiver("q/shutdown", 1).await.unwrap();
    router.shutdown(Duration::from_millis(100)).await;
    let err = timeout(WAIT, conn.closed()).await.unwrap();
    assert_eq!(
        err.condition(),
        Some(condition::CONNECTION_FORCED),
        "{err:?}"
    );
    let err = timeout(WAIT, receiver.recv()).await.unwrap().unwrap_err();
    assert_eq!(
        err.condition(),
        Some(condition::CONNECTION_FORCED),
        "{err:?}"
    );
}

#[tokio::test]
async fn raw_connection_can_break_the_protocol() {
    let (_router, addr) = start().await;
    let mut raw = Connection::raw(addr).await.unwrap();
    raw.open("raw").await.unwrap();
    raw.begin(0).await.unwrap();
    // A transfer on a handle that was never attached ends the session.
    let transfer = shoal_amqp::Transfer {
        handle: 7,
        delivery_id: Some(0),
        delivery_tag: Some(Bytes::from_static(b"t")),
        ..Default::default()
    };
    raw.send_frame(0, &Performative::Transfer(transfer), &text("x").to_bytes())
        .await
        .unwrap();
    let reply = loop {
        match raw.next_performative().await {
            Some((_, Performative::Flow(_))) => continue,
            other => break other,
        }
    };
    let Some((0, Performative::End(end))) = reply else {
        panic!("expected end, got {reply:?}");
    };
    assert_eq!(
        end.error.map(|e| e.condition.0),
        Some(condition::SESSION_UNATTACHED_HANDLE.to_string())
    );

    // Without the header exchange, the peer answers a bad header with its own and closes.
    let mut raw = Connection::raw_no_header(addr).await.unwrap();
    raw.send_bytes(b"AMQP\x09\x01\x00\x00").await.unwrap();
    assert_eq!(raw.read_bytes(4).await.as_deref(), Some(&b"AMQP"[..]));
}
