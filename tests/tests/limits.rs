//! The router's resource limits: the handshake deadline, the connection limit, the message size limit and the
//! per-connection byte budget. Each runs a bare router (`TestRouter`) with the one limit set small.

mod common;

use common::{message, within};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use shoal_amqp::{
    condition, Attach, Body, DeliveryState, Flow, Performative, Role, SenderSettleMode, Source,
    Target,
};
use shoal_client::{ClientError, ConnectOptions, Connection, SenderOptions};
use shoal_test_support::TestRouter;
use tokio::time::Instant;

/// `from` sends one message to `to`'s receiver on `address`; it must arrive and be accepted.
async fn roundtrip(from: &Connection, to: &Connection, address: &str) {
    let receiver = within("attach receiver", to.receiver(address, 1))
        .await
        .unwrap();
    let sender = within(
        "attach sender",
        from.sender(Some(address), SenderOptions::default()),
    )
    .await
    .unwrap();
    let delivery = within("send", sender.send(&message(address.to_owned()), false))
        .await
        .unwrap();
    let got = within("receive", receiver.recv()).await.unwrap();
    assert_eq!(
        got.message().unwrap().body,
        Body::Data(Bytes::copy_from_slice(address.as_bytes()))
    );
    receiver.accept(&got).await.unwrap();
    assert_eq!(
        within("outcome", delivery.outcome()).await.unwrap(),
        DeliveryState::Accepted
    );
}

// ---- handshake deadline ----

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_at_the_handshake_deadline() {
    let deadline = Duration::from_millis(300);
    let router = TestRouter::start_with(|c| c.handshake_timeout = deadline).await;
    let start = Instant::now();
    let mut raw = Connection::raw_no_header(router.addr()).await.unwrap();
    raw.wait = Duration::from_secs(5);
    assert!(
        raw.wait_eof().await,
        "the router never closed a silent connection"
    );
    let took = start.elapsed();
    assert!(
        took >= deadline - Duration::from_millis(50),
        "closed after {took:?}, before the deadline"
    );
}

#[tokio::test]
async fn a_connection_that_never_opens_is_closed_at_the_handshake_deadline() {
    let deadline = Duration::from_millis(300);
    let router = TestRouter::start_with(|c| c.handshake_timeout = deadline).await;
    let start = Instant::now();
    // The protocol header is exchanged, but no `open` follows.
    let mut raw = Connection::raw(router.addr()).await.unwrap();
    let close = loop {
        match raw.next_performative().await {
            Some((_, Performative::Close(c))) => break c,
            Some(_) => continue,
            None => panic!("expected the router's close"),
        }
    };
    let took = start.elapsed();
    let error = close.error.expect("the close carries an error");
    assert_eq!(error.condition.as_str(), condition::RESOURCE_LIMIT_EXCEEDED);
    assert!(
        took >= deadline - Duration::from_millis(50),
        "closed after {took:?}, before the deadline"
    );
    assert!(raw.wait_eof().await);
}

// ---- connection limit ----

#[tokio::test]
async fn connections_over_the_limit_are_refused_until_one_closes() {
    let router = TestRouter::start_with(|c| c.max_connections = 2).await;
    let first = Connection::connect(router.addr(), ConnectOptions::default())
        .await
        .unwrap();
    let second = Connection::connect(router.addr(), ConnectOptions::default())
        .await
        .unwrap();

    // A third is closed at once: no header, no frame, just the end of the stream.
    let mut raw = Connection::raw_no_header(router.addr()).await.unwrap();
    raw.wait = Duration::from_secs(2);
    raw.send_bytes(&shoal_amqp::AMQP_HEADER).await.unwrap();
    assert_eq!(
        raw.read_bytes(1).await,
        None,
        "the third connection got an answer"
    );
    let refused = Connection::connect(router.addr(), ConnectOptions::default()).await;
    assert!(refused.is_err(), "a third connection was served");

    // The first two are unaffected.
    roundtrip(&first, &second, "limit/one").await;
    roundtrip(&second, &first, "limit/two").await;

    // When one goes, a new connection is accepted again (the slot frees once the router has let it go).
    first.close().await.unwrap();
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    let third = loop {
        match Connection::connect(router.addr(), ConnectOptions::default()).await {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("no connection accepted after one of the two closed: {e}"),
        }
    };
    roundtrip(&third, &second, "limit/three").await;
}

// ---- message size ----

#[tokio::test]
async fn a_message_over_max_message_size_detaches_the_sender_with_message_size_exceeded() {
    let limit = 64 * 1024;
    let router = TestRouter::start_with(|c| c.max_message_size = limit).await;
    let conn = Connection::connect(router.addr(), ConnectOptions::default())
        .await
        .unwrap();
    let receiver = conn.receiver("size/q", 2).await.unwrap();
    let sender = conn
        .sender(Some("size/q"), SenderOptions::default())
        .await
        .unwrap();
    assert_eq!(sender.remote_attach().max_message_size, Some(limit));

    let delivery = within("send", sender.send(vec![7u8; 100 * 1024], false))
        .await
        .unwrap();
    let reason = within("the detach", sender.detached()).await;
    assert_eq!(
        reason.condition(),
        Some(condition::LINK_MESSAGE_SIZE_EXCEEDED),
        "{reason:?}"
    );
    assert!(
        within("outcome", delivery.outcome()).await.is_err(),
        "an oversized delivery got an outcome"
    );

    // Only that link ended: the connection sends a message of the allowed size on a new one.
    let sender = conn
        .sender(Some("size/q"), SenderOptions::default())
        .await
        .unwrap();
    let fits = vec![8u8; 60 * 1024];
    let delivery = within("send", sender.send(fits.clone(), false))
        .await
        .unwrap();
    let got = within("receive", receiver.recv()).await.unwrap();
    assert_eq!(
        got.bytes.len(),
        fits.len(),
        "the oversized message must never arrive, only this one"
    );
    receiver.accept(&got).await.unwrap();
    assert_eq!(
        within("outcome", delivery.outcome()).await.unwrap(),
        DeliveryState::Accepted
    );
    assert!(receiver.try_recv().is_none());
}

// ---- connection byte budget ----

#[tokio::test]
async fn a_slow_receiver_holds_back_a_sender_at_the_connection_budget() {
    const COUNT: usize = 600;
    const SIZE: usize = 100 * 1024;
    // A small link capacity keeps the credit the sender holds (messages it may send before the router has read
    // them) small next to COUNT, so what holds the sender back must be the router no longer reading.
    let router = TestRouter::start_with(|c| {
        c.connection_budget = 1024 * 1024;
        c.link_capacity = 50;
    })
    .await;

    // The slow receiver: grants credit for everything, then reads nothing.
    let mut raw = Connection::raw(router.addr()).await.unwrap();
    raw.open("slow-receiver").await.unwrap();
    raw.begin(0).await.unwrap();
    let attach = Attach {
        name: "slow".into(),
        handle: 0,
        role: Role::Receiver,
        snd_settle_mode: SenderSettleMode::Settled,
        source: Some(Box::new(Source {
            address: Some("budget/q".into()),
            ..Source::default()
        })),
        target: Some(Box::new(Target::default())),
        ..Attach::default()
    };
    raw.send_frame(0, &Performative::Attach(attach), &[])
        .await
        .unwrap();
    match raw.next_performative().await {
        Some((_, Performative::Attach(_))) => {}
        other => panic!("expected attach, got {other:?}"),
    }
    let flow = Flow {
        next_incoming_id: Some(0),
        incoming_window: 1 << 20,
        next_outgoing_id: 0,
        outgoing_window: u32::MAX,
        handle: Some(0),
        delivery_count: Some(0),
        link_credit: Some(COUNT as u32),
        ..Flow::default()
    };
    raw.send_frame(0, &Performative::Flow(flow), &[])
        .await
        .unwrap();

    let conn = Connection::connect(router.addr(), ConnectOptions::default())
        .await
        .unwrap();
    let sender = conn
        .sender(Some("budget/q"), SenderOptions::default())
        .await
        .unwrap();
    let payload = Bytes::from(vec![0x5a; SIZE]);
    let sent = Arc::new(AtomicUsize::new(0));
    let mut sending = tokio::spawn({
        let sent = Arc::clone(&sent);
        async move {
            for _ in 0..COUNT {
                sender.send(payload.clone(), true).await?;
                sent.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, ClientError>(sender)
        }
    });

    // Wait for the sends to stop making progress. There is no event for "stuck", so progress is sampled;
    // the sends finishing instead means the router took everything in while the receiver read nothing.
    let started = Instant::now();
    let mut last = usize::MAX;
    let mut still_since = Instant::now();
    let stalled_at = loop {
        assert!(
            !sending.is_finished(),
            "all {COUNT} sends of {SIZE} bytes completed while the receiver read nothing"
        );
        let now = sent.load(Ordering::Relaxed);
        if now != last {
            last = now;
            still_since = Instant::now();
        } else if now > 0 && still_since.elapsed() >= Duration::from_millis(500) {
            break now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the sender neither finished nor stalled"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(stalled_at < COUNT, "{stalled_at}");
    eprintln!("sender held back after {stalled_at} of {COUNT} messages");

    // The receiver reads: everything arrives, and the sender finishes.
    let mut received = 0;
    let mut bytes = 0;
    while received < COUNT {
        let frame = raw
            .next_frame()
            .await
            .unwrap_or_else(|| panic!("only {received} of {COUNT} arrived"));
        if let Some(Performative::Transfer(t)) = frame.performative {
            bytes += frame.payload.len();
            if !t.more {
                received += 1;
            }
        }
    }
    assert_eq!(bytes, COUNT * SIZE);
    let sender = within("the sends to complete", &mut sending)
        .await
        .unwrap()
        .unwrap();
    assert!(sender.error().is_none());
    assert_eq!(sent.load(Ordering::Relaxed), COUNT);
}
