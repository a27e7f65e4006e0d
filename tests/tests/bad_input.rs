//! Bad bytes and protocol violations: each closes (or ends, or detaches) only what it must, with the right error
//! condition, and the router stays up. Every case runs between two good clients: one connected before the bad
//! one (it must keep working) and one connected after (the router must still accept and route).

mod common;

use common::{attach, message, within};

use bytes::Bytes;
use shoal_amqp::{
    condition, AmqpError, Body, DeliveryState, End, Flow, Open, Performative, Role, Transfer,
    AMQP_HEADER,
};
use shoal_client::{
    ConnectOptions, Connection, RawConnection, Receiver, ReceiverOptions, Sender, SenderOptions,
};
use shoal_test_support::TestShoal;
use tokio::io::AsyncWriteExt;

/// A good client with a sender and a receiver on its own address, connected before the bad client.
struct Witness {
    conn: Connection,
    sender: Sender,
    receiver: Receiver,
    sent: u32,
}

impl Witness {
    async fn connect(shoal: &TestShoal, address: &str) -> Witness {
        let conn = Connection::connect(shoal.amqp(), ConnectOptions::default())
            .await
            .unwrap();
        let opts = ReceiverOptions {
            auto_replenish: true,
            ..ReceiverOptions::credit(10)
        };
        let receiver = conn.receiver_with(Some(address), opts).await.unwrap();
        let sender = conn
            .sender(Some(address), SenderOptions::default())
            .await
            .unwrap();
        let mut w = Witness {
            conn,
            sender,
            receiver,
            sent: 0,
        };
        w.roundtrip().await;
        w
    }

    /// One message there and back, accepted.
    async fn roundtrip(&mut self) {
        self.sent += 1;
        let body = format!("witness {}", self.sent);
        let delivery = within(
            "witness send",
            self.sender.send(&message(body.clone()), false),
        )
        .await
        .unwrap();
        let got = within("witness receive", self.receiver.recv())
            .await
            .unwrap();
        assert_eq!(got.message().unwrap().body, Body::Data(body.into()));
        self.receiver.accept(&got).await.unwrap();
        assert_eq!(
            within("witness outcome", delivery.outcome()).await.unwrap(),
            DeliveryState::Accepted
        );
        assert!(
            self.conn.error().is_none(),
            "the witness connection failed: {:?}",
            self.conn.error()
        );
    }
}

/// After a bad client: the earlier witness still works, and a new client connects and routes a message.
async fn router_still_serves(shoal: &TestShoal, mut witness: Witness) {
    witness.roundtrip().await;
    let conn = within(
        "a new connection",
        Connection::connect(shoal.amqp(), ConnectOptions::default()),
    )
    .await
    .expect("the router accepts new connections after the bad one");
    let receiver = conn.receiver("after/bad", 1).await.unwrap();
    let sender = conn
        .sender(Some("after/bad"), SenderOptions::default())
        .await
        .unwrap();
    let delivery = within("send", sender.send(&message("after"), false))
        .await
        .unwrap();
    let got = within("receive", receiver.recv()).await.unwrap();
    receiver.accept(&got).await.unwrap();
    assert_eq!(
        within("outcome", delivery.outcome()).await.unwrap(),
        DeliveryState::Accepted
    );
    conn.close().await.unwrap();
    witness.conn.close().await.unwrap();
}

/// Skips performatives until a `close`; returns its error (the router's close must carry one here).
async fn close_error(raw: &mut RawConnection) -> AmqpError {
    loop {
        match raw.next_performative().await {
            Some((_, Performative::Close(c))) => {
                return c.error.expect("the close carries an error")
            }
            Some(_) => continue,
            None => panic!("expected close, the connection ended or went silent"),
        }
    }
}

/// The router closes with `cond` and then closes the socket.
async fn expect_close(raw: &mut RawConnection, cond: &str) -> AmqpError {
    let error = close_error(raw).await;
    assert_eq!(error.condition.as_str(), cond, "{error:?}");
    assert!(
        raw.wait_eof().await,
        "the socket must close after the close frame"
    );
    error
}

/// Skips performatives until an `end`; returns its error.
async fn end_error(raw: &mut RawConnection) -> Option<AmqpError> {
    loop {
        match raw.next_performative().await {
            Some((_, Performative::End(e))) => return e.error,
            Some((_, Performative::Close(c))) => {
                panic!("expected end, the router closed the connection: {c:?}")
            }
            Some(_) => continue,
            None => panic!("expected end, the connection ended or went silent"),
        }
    }
}

fn first_transfer(handle: u32, delivery_id: u32) -> Performative {
    Performative::Transfer(Transfer {
        handle,
        delivery_id: Some(delivery_id),
        delivery_tag: Some(Bytes::from(delivery_id.to_be_bytes().to_vec())),
        message_format: Some(0),
        settled: Some(true),
        ..Transfer::default()
    })
}

async fn opened_raw(shoal: &TestShoal) -> RawConnection {
    let mut raw = Connection::raw(shoal.amqp()).await.unwrap();
    raw.open("bad-input").await.unwrap();
    raw
}

async fn expect_attach(raw: &mut RawConnection, handle: u32) {
    match raw.next_performative().await {
        Some((_, Performative::Attach(a))) => assert_eq!(a.handle, handle),
        other => panic!("expected attach for handle {handle}, got {other:?}"),
    }
}

// ---- protocol headers ----

/// Sends `bytes` instead of a protocol header; the router must answer with its AMQP header and close.
async fn bad_header_case(bytes: &[u8]) {
    let shoal = TestShoal::start().await;
    let witness = Witness::connect(&shoal, "witness/header").await;
    let mut raw = Connection::raw_no_header(shoal.amqp()).await.unwrap();
    raw.send_bytes(bytes).await.unwrap();
    assert_eq!(
        raw.read_bytes(8).await.as_deref(),
        Some(&AMQP_HEADER[..]),
        "for {bytes:?}"
    );
    assert!(
        raw.wait_eof().await,
        "the router must close after refusing {bytes:?}"
    );
    router_still_serves(&shoal, witness).await;
}

#[tokio::test]
async fn garbage_instead_of_a_header_gets_the_amqp_header_and_eof() {
    bad_header_case(b"\x16\x03\x01\x02\x00garbage\xff\xfe\x00").await;
}

#[tokio::test]
async fn an_unsupported_amqp_version_gets_the_amqp_header_and_eof() {
    bad_header_case(b"AMQP\x05\x01\x00\x00").await;
}

#[tokio::test]
async fn an_http_request_gets_the_amqp_header_and_eof() {
    bad_header_case(b"HTTP/1.1").await;
}

// ---- framing ----

#[tokio::test]
async fn a_frame_size_below_8_is_a_framing_error() {
    let shoal = TestShoal::start().await;
    let witness = Witness::connect(&shoal, "witness/size").await;
    let mut raw = Connection::raw(shoal.amqp()).await.unwrap();
    raw.send_bytes(&[0, 0, 0, 4, 2, 0, 0, 0]).await.unwrap();
    expect_close(&mut raw, condition::CONNECTION_FRAMING_ERROR).await;
    router_still_serves(&shoal, witness).await;
}

#[tokio::test]
async fn a_data_offset_below_2_is_a_framing_error() {
    let shoal = TestShoal::start().await;
    let witness = Witness::connect(&shoal, "witness/doff").await;
    let mut raw = opened_raw(&shoal).await;
    raw.send_bytes(&[0, 0, 0, 8, 1, 0, 0, 0]).await.unwrap();
    expect_close(&mut raw, condition::CONNECTION_FRAMING_ERROR).await;
    router_still_serves(&shoal, witness).await;
}

#[tokio::test]
async fn a_frame_over_the_router_max_frame_size_is_a_framing_error() {
    let shoal = TestShoal::start().await;
    let witness = Witness::connect(&shoal, "witness/oversized").await;
    let mut raw = opened_raw(&shoal).await;
    // Only the header: the router must refuse on the size field alone, before buffering the body.
    let size = shoal_router::RouterConfig::default().max_frame_size + 1;
    let mut header = size.to_be_bytes().to_vec();
    header.extend_from_slice(&[2, 0, 0, 0]);
    raw.send_bytes(&header).await.unwrap();
    let error = expect_close(&mut raw, condition::CONNECTION_FRAMING_ERROR).await;
    assert!(error
        .description
        .unwrap_or_default()
        .contains(&size.to_string()));
    router_still_serves(&shoal, witness).await;
}

#[tokio::test]
async fn garbage_in_place_of_a_performative_is_a_decode_error() {
    let shoal = TestShoal::start().await;
    let witness = Witness::connect(&shoal, "witness/garbage").await;
    let mut raw = opened_raw(&shoal).await;
    raw.send_bytes(&[0, 0, 0, 12, 2, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef])
        .await
        .unwrap();
    expect_close(&mut raw, condition::DECODE_ERROR).await;
    router_still_serves(&shoal, witness).await;
}

#[tokio::test]
async fn an_open_with_max_frame_size_256_is_frame_size_too_small() {
    let shoal = TestShoal::start().await;
    let witness = Witness::connect(&shoal, "witness/mfs").await;
    let mut raw = Connection::raw(shoal.amqp()).await.unwrap();
    let open = Open {
        container_id: "tiny-frames".into(),
        max_frame_size: 256,
        ..Open::default()
    };
    raw.send_frame(0, &Performative::Open(open), &[])
        .await
        .unwrap();
    expect_close(&mut raw, condition::FRAME_SIZE_TOO_SMALL).await;
    router_still_serves(&shoal, witness).await;
}

#[tokio::test]
async fn a_truncated_frame_then_eof_just_closes() {
    let shoal = TestShoal::start().await;
    let witness = Witness::connect(&shoal, "witness/truncated").await;
    let mut raw = opened_raw(&shoal).await;
    raw.begin(0).await.unwrap();
    // The header of a 100-byte frame and 12 of its bytes, then our write side closes.
    let mut partial = vec![0, 0, 0, 100, 2, 0, 0, 0];
    partial.extend_from_slice(&[0x00, 0x53, 0x10, 0xc0, 0x50, 0x05, 0, 0, 0, 0, 0, 0]);
    raw.send_bytes(&partial).await.unwrap();
    raw.stream().shutdown().await.unwrap();
    // Nothing to say to a peer that is gone: no frame, just the end of the stream.
    assert!(raw.next_performative().await.is_none());
    assert!(
        raw.wait_eof().await,
        "the router must close the socket after the peer's EOF"
    );
    router_still_serves(&shoal, witness).await;
}

// ---- state machine violations ----

#[tokio::test]
async fn begin_before_open_is_illegal_state() {
    let shoal = TestShoal::start().await;
    let witness = Witness::connect(&shoal, "witness/begin").await;
    let mut raw = Connection::raw(shoal.amqp()).await.unwrap();
    let begin = shoal_amqp::Begin {
        incoming_window: 100,
        outgoing_window: 100,
        ..shoal_amqp::Begin::default()
    };
    raw.send_frame(0, &Performative::Begin(begin), &[])
        .await
        .unwrap();
    expect_close(&mut raw, condition::ILLEGAL_STATE).await;
    router_still_serves(&shoal, witness).await;
}

#[tokio::test]
async fn open_twice_is_illegal_state() {
    let shoal = TestShoal::start().await;
    let witness = Witness::connect(&shoal, "witness/open").await;
    let mut raw = opened_raw(&shoal).await;
    let open = Open {
        container_id: "again".into(),
        ..Open::default()
    };
    raw.send_frame(0, &Performative::Open(open), &[])
        .await
        .unwrap();
    expect_close(&mut raw, condition::ILLEGAL_STATE).await;
    router_still_serves(&shoal, witness).await;
}

#[tokio::test]
async fn attach_on_a_channel_without_a_session_closes_naming_the_channel() {
    let shoal = TestShoal::start().await;
    let witness = Witness::connect(&shoal, "witness/nosession").await;
    let mut raw = opened_raw(&shoal).await;
    raw.send_frame(3, &attach(0, "orphan", Role::Receiver, "x"), &[])
        .await
        .unwrap();
    let error = close_error(&mut raw).await;
    // The spec names no condition for this; the router reports the missing session (not-found).
    assert_eq!(error.condition.as_str(), condition::NOT_FOUND, "{error:?}");
    let description = error.description.unwrap_or_default();
    assert!(
        description.contains("session") && description.contains('3'),
        "{description}"
    );
    assert!(raw.wait_eof().await);
    router_still_serves(&shoal, witness).await;
}

#[tokio::test]
async fn attach_twice_on_one_handle_ends_the_session_with_handle_in_use() {
    let shoal = TestShoal::start().await;
    let witness = Witness::connect(&shoal, "witness/handle").await;
    let mut raw = opened_raw(&shoal).await;
    raw.begin(0).await.unwrap();
    raw.send_frame(0, &attach(0, "first", Role::Receiver, "dup/a"), &[])
        .await
        .unwrap();
    expect_attach(&mut raw, 0).await;
    raw.send_frame(0, &attach(0, "second", Role::Receiver, "dup/b"), &[])
        .await
        .unwrap();
    let error = end_error(&mut raw).await.expect("the end carries an error");
    assert_eq!(error.condition.as_str(), condition::SESSION_HANDLE_IN_USE);
    // Only the session ended: the connection takes a new one.
    raw.send_frame(0, &Performative::End(End { error: None }), &[])
        .await
        .unwrap();
    let begin = raw.begin(1).await.unwrap();
    assert_eq!(begin.remote_channel, Some(1));
    raw.send_frame(1, &attach(0, "fresh", Role::Receiver, "dup/c"), &[])
        .await
        .unwrap();
    expect_attach(&mut raw, 0).await;
    router_still_serves(&shoal, witness).await;
}

#[tokio::test]
async fn a_transfer_on_an_unattached_handle_ends_the_session_with_unattached_handle() {
    let shoal = TestShoal::start().await;
    let witness = Witness::connect(&shoal, "witness/unattached").await;
    let mut raw = opened_raw(&shoal).await;
    raw.begin(0).await.unwrap();
    raw.send_frame(0, &first_transfer(7, 0), b"payload")
        .await
        .unwrap();
    let error = end_error(&mut raw).await.expect("the end carries an error");
    assert_eq!(
        error.condition.as_str(),
        condition::SESSION_UNATTACHED_HANDLE
    );
    router_still_serves(&shoal, witness).await;
}

#[tokio::test]
async fn a_transfer_without_credit_detaches_the_link_and_the_session_carries_on() {
    let shoal = TestShoal::start().await;
    let witness = Witness::connect(&shoal, "witness/credit").await;
    let mut raw = opened_raw(&shoal).await;
    raw.begin(0).await.unwrap();
    // Nobody consumes `nocredit/q`, so the router grants this sender no credit.
    raw.send_frame(0, &attach(0, "greedy", Role::Sender, "nocredit/q"), &[])
        .await
        .unwrap();
    expect_attach(&mut raw, 0).await;
    let msg = message("unasked").to_bytes();
    raw.send_frame(0, &first_transfer(0, 0), &msg)
        .await
        .unwrap();
    let detach = loop {
        match raw.next_performative().await {
            Some((_, Performative::Detach(d))) => break d,
            Some((_, Performative::Flow(f)))
                if f.handle == Some(0) && f.link_credit.unwrap_or(0) > 0 =>
            {
                panic!("the router granted credit to a sender with no consumer: {f:?}")
            }
            Some((_, p @ (Performative::End(_) | Performative::Close(_)))) => {
                panic!("expected a detach, the router escalated: {p:?}")
            }
            Some(_) => continue,
            None => panic!("expected a detach"),
        }
    };
    assert_eq!(detach.handle, 0);
    assert!(detach.closed);
    let error = detach.error.expect("the detach carries an error");
    assert_eq!(
        error.condition.as_str(),
        condition::LINK_TRANSFER_LIMIT_EXCEEDED
    );
    raw.send_frame(
        0,
        &Performative::Detach(shoal_amqp::Detach {
            handle: 0,
            closed: true,
            error: None,
        }),
        &[],
    )
    .await
    .unwrap();

    // The connection and session stay usable: a new receiving link on the same session gets a message.
    raw.send_frame(0, &attach(1, "after", Role::Receiver, "credit/after"), &[])
        .await
        .unwrap();
    expect_attach(&mut raw, 1).await;
    let flow = Flow {
        next_incoming_id: Some(0),
        incoming_window: 1 << 20,
        next_outgoing_id: 1,
        outgoing_window: u32::MAX,
        handle: Some(1),
        delivery_count: Some(0),
        link_credit: Some(1),
        ..Flow::default()
    };
    raw.send_frame(0, &Performative::Flow(flow), &[])
        .await
        .unwrap();
    let sender = witness
        .conn
        .sender(Some("credit/after"), SenderOptions::default())
        .await
        .unwrap();
    within("send", sender.send(&message("to the raw receiver"), true))
        .await
        .unwrap();
    let payload = loop {
        let frame = raw.next_frame().await.expect("a transfer on the new link");
        match frame.performative {
            Some(Performative::Transfer(t)) => {
                assert_eq!(t.handle, 1);
                break frame.payload;
            }
            Some(p @ (Performative::End(_) | Performative::Close(_))) => {
                panic!("expected a transfer, got {p:?}")
            }
            _ => continue,
        }
    };
    assert_eq!(payload, message("to the raw receiver").to_bytes());
    router_still_serves(&shoal, witness).await;
}
