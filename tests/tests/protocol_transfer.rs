//! The router's AMQP 1.0 behaviour on the wire for deliveries: frame sizes and multi-frame deliveries, aborted
//! transfers, session windows, link refusals and drain. Raw connections show the exact frames.

mod common;

#[allow(unused_imports)]
use common::*;

// ---- frame sizes and multi-frame deliveries ----

#[tokio::test]
async fn a_receiver_with_max_frame_size_512_gets_a_large_message_in_small_frames() {
    let router = TestRouter::start().await;
    let conn = Connection::connect(router.addr(), ConnectOptions::default())
        .await
        .unwrap();

    let mut raw = Connection::raw(router.addr()).await.unwrap();
    // `next_frame` refuses (returns None for) any frame larger than this.
    raw.max_frame_size = 512;
    let open = Open {
        max_frame_size: 512,
        ..open_frame("small-frames")
    };
    raw.send_frame(0, &Performative::Open(open), &[])
        .await
        .unwrap();
    expect(&mut raw, "open", |p| {
        matches!(p, Performative::Open(_)).then_some(())
    })
    .await;
    raw.begin(0).await.unwrap();
    raw.send_frame(0, &attach(0, "small-frames", Role::Receiver, "mfs"), &[])
        .await
        .unwrap();
    expect(&mut raw, "attach", |p| {
        matches!(p, Performative::Attach(_)).then_some(())
    })
    .await;
    raw.send_frame(0, &link_flow(0, 0, 1, false), &[])
        .await
        .unwrap();

    let body = Bytes::from(pattern(100 * 1024));
    let sender = conn
        .sender(Some("mfs"), SenderOptions::default())
        .await
        .unwrap();
    within("send", sender.send(body.clone(), true))
        .await
        .unwrap();

    let mut got = BytesMut::new();
    let mut frames = 0;
    loop {
        let frame = raw
            .next_frame()
            .await
            .expect("a transfer frame of at most 512 bytes");
        let Some(Performative::Transfer(t)) = frame.performative else {
            continue;
        };
        frames += 1;
        assert!(
            frame.payload.len() < 512,
            "payload of {} bytes in one frame",
            frame.payload.len()
        );
        assert_eq!(
            t.delivery_id.is_some(),
            frames == 1,
            "only the first frame carries the delivery-id"
        );
        got.extend_from_slice(&frame.payload);
        if !t.more {
            break;
        }
    }
    assert!(frames > 200, "100 KiB in {frames} frames");
    assert_eq!(got.len(), body.len());
    assert!(got[..] == body[..], "the reassembled message differs");
}

#[tokio::test]
async fn a_multi_frame_message_from_a_small_frame_sender_is_reassembled() {
    // The router accepts frames of 512 bytes at most, so the client must split a 50 KiB message into ~115.
    let router = TestRouter::start_with(|c| c.max_frame_size = 512).await;
    let conn = Connection::connect(router.addr(), ConnectOptions::default())
        .await
        .unwrap();
    assert_eq!(conn.remote_open().max_frame_size, 512);
    let receiver = conn.receiver("small/in", 1).await.unwrap();
    let sender = conn
        .sender(Some("small/in"), SenderOptions::default())
        .await
        .unwrap();
    let body = Bytes::from(pattern(50 * 1024));
    let delivery = within("send", sender.send(body.clone(), false))
        .await
        .unwrap();
    let got = within("receive", receiver.recv()).await.unwrap();
    assert_eq!(hash(&got.bytes), hash(&body));
    receiver.accept(&got).await.unwrap();
    assert_eq!(
        within("outcome", delivery.outcome()).await.unwrap(),
        DeliveryState::Accepted
    );
    assert!(
        conn.error().is_none(),
        "the connection must survive: {:?}",
        conn.error()
    );
}

#[tokio::test]
async fn a_10_mib_message_goes_through_intact_and_is_accepted() {
    let router = TestRouter::start().await;
    let conn = Connection::connect(router.addr(), ConnectOptions::default())
        .await
        .unwrap();
    let receiver = conn.receiver("big/ten", 1).await.unwrap();
    let sender = conn
        .sender(Some("big/ten"), SenderOptions::default())
        .await
        .unwrap();
    let body = Bytes::from(pattern(10 * 1024 * 1024));
    let msg = message(body.clone());
    let delivery = within("send", sender.send(&msg, false)).await.unwrap();
    let got = within("receive 10 MiB", receiver.recv()).await.unwrap();
    let decoded = got.message().unwrap();
    let Body::Data(data) = decoded.body else {
        panic!("expected a data body")
    };
    assert_eq!(data.len(), body.len());
    assert_eq!(hash(&data), hash(&body), "the 10 MiB body differs");
    receiver.accept(&got).await.unwrap();
    assert_eq!(
        within("outcome", delivery.outcome()).await.unwrap(),
        DeliveryState::Accepted
    );
}

// ---- aborted transfers ----

#[tokio::test]
async fn an_aborted_delivery_never_reaches_the_receiver_and_the_next_one_does() {
    let router = TestRouter::start().await;
    let conn = Connection::connect(router.addr(), ConnectOptions::default())
        .await
        .unwrap();
    let receiver = conn.receiver("abort/q", 10).await.unwrap();

    let mut raw = Connection::raw(router.addr()).await.unwrap();
    raw.open("abort-test").await.unwrap();
    raw.begin(0).await.unwrap();
    raw.send_frame(0, &attach(0, "aborting", Role::Sender, "abort/q"), &[])
        .await
        .unwrap();
    expect(&mut raw, "attach", |p| {
        matches!(p, Performative::Attach(_)).then_some(())
    })
    .await;
    let credit = expect(&mut raw, "flow with credit", |p| match p {
        Performative::Flow(f) if f.handle == Some(0) => f.link_credit,
        _ => None,
    })
    .await;
    assert!(credit >= 3, "credit {credit}");

    let first = message("the aborted one").to_bytes();
    let second = message("the second one").to_bytes();
    let third = message("the third one").to_bytes();
    let transfer = |id: u32, more: bool| Transfer {
        handle: 0,
        delivery_id: Some(id),
        delivery_tag: Some(Bytes::from(id.to_be_bytes().to_vec())),
        message_format: Some(0),
        settled: Some(true),
        more,
        ..Transfer::default()
    };
    // The first half of a delivery, then its abort.
    raw.send_frame(0, &Performative::Transfer(transfer(0, true)), &first[..10])
        .await
        .unwrap();
    let abort = Transfer {
        handle: 0,
        settled: Some(true),
        aborted: true,
        ..Transfer::default()
    };
    raw.send_frame(0, &Performative::Transfer(abort), &[])
        .await
        .unwrap();
    raw.send_frame(0, &Performative::Transfer(transfer(1, false)), &second)
        .await
        .unwrap();
    raw.send_frame(0, &Performative::Transfer(transfer(2, false)), &third)
        .await
        .unwrap();

    // Order is kept on a link: had the aborted delivery got through, it would come first.
    let a = within("the second delivery", receiver.recv())
        .await
        .unwrap();
    assert_eq!(
        a.bytes, second,
        "the first delivery the receiver sees must be the one after the abort"
    );
    let b = within("the third delivery", receiver.recv()).await.unwrap();
    assert_eq!(b.bytes, third);
    assert!(receiver.try_recv().is_none());
}

/// The same on the wire: a raw receiver may see the first part of the aborted delivery (the router streams
/// large deliveries on as they arrive), but then it must see that delivery end with `aborted`, never complete;
/// the next delivery follows whole.
#[tokio::test]
async fn an_aborted_delivery_is_never_completed_on_the_wire() {
    let router = TestRouter::start().await;
    let mut rx = Connection::raw(router.addr()).await.unwrap();
    rx.open("abort-receiver").await.unwrap();
    rx.begin(0).await.unwrap();
    rx.send_frame(0, &attach(0, "watching", Role::Receiver, "abort/wire"), &[])
        .await
        .unwrap();
    expect(&mut rx, "attach", |p| {
        matches!(p, Performative::Attach(_)).then_some(())
    })
    .await;
    rx.send_frame(0, &link_flow(0, 0, 10, false), &[])
        .await
        .unwrap();

    let mut tx = Connection::raw(router.addr()).await.unwrap();
    tx.open("abort-sender").await.unwrap();
    tx.begin(0).await.unwrap();
    tx.send_frame(0, &attach(0, "aborting", Role::Sender, "abort/wire"), &[])
        .await
        .unwrap();
    expect(&mut tx, "attach", |p| {
        matches!(p, Performative::Attach(_)).then_some(())
    })
    .await;
    expect(&mut tx, "flow with credit", |p| match p {
        Performative::Flow(f) if f.handle == Some(0) && f.link_credit > Some(1) => Some(()),
        _ => None,
    })
    .await;

    let aborted = Bytes::from(pattern(4000));
    let next = message("after the abort").to_bytes();
    let head = |id: u32, more: bool| Transfer {
        handle: 0,
        delivery_id: Some(id),
        delivery_tag: Some(Bytes::from(id.to_be_bytes().to_vec())),
        message_format: Some(0),
        settled: Some(true),
        more,
        ..Transfer::default()
    };
    tx.send_frame(0, &Performative::Transfer(head(0, true)), &aborted[..2000])
        .await
        .unwrap();
    let abort = Transfer {
        handle: 0,
        settled: Some(true),
        aborted: true,
        ..Transfer::default()
    };
    tx.send_frame(0, &Performative::Transfer(abort), &[])
        .await
        .unwrap();
    tx.send_frame(0, &Performative::Transfer(head(1, false)), &next)
        .await
        .unwrap();

    // Walk the receiver's transfers: parts of a delivery in progress, ended by `aborted` or by more=false.
    let mut current: Option<BytesMut> = None;
    let mut aborts = 0;
    let completed = loop {
        let frame = rx.next_frame().await.expect("a transfer for the receiver");
        let Some(Performative::Transfer(t)) = frame.performative else {
            continue;
        };
        if t.aborted {
            assert!(
                current.take().is_some(),
                "an abort with no delivery in progress"
            );
            aborts += 1;
            continue;
        }
        if t.delivery_id.is_some() {
            assert!(
                current.is_none(),
                "a new delivery began before the last one ended: {t:?}"
            );
        }
        let part = current.get_or_insert_with(BytesMut::new);
        part.extend_from_slice(&frame.payload);
        if !t.more {
            break current.take().expect("set above");
        }
    };
    assert_eq!(
        completed, next,
        "the first delivery completed must be the one after the abort"
    );
    assert!(aborts <= 1);
}

// ---- session window ----

#[tokio::test]
async fn a_session_incoming_window_of_one_holds_transfers_until_a_flow_opens_it() {
    let router = TestRouter::start().await;
    let mut raw = Connection::raw(router.addr()).await.unwrap();
    raw.open("window-test").await.unwrap();
    let begin = Begin {
        next_outgoing_id: 0,
        incoming_window: 1,
        outgoing_window: 1 << 20,
        ..Begin::default()
    };
    raw.send_frame(0, &Performative::Begin(begin), &[])
        .await
        .unwrap();
    let theirs = expect(&mut raw, "begin", |p| match p {
        Performative::Begin(b) => Some(b),
        _ => None,
    })
    .await;
    assert_eq!(
        theirs.incoming_window,
        shoal_router::RouterConfig::default().session_window
    );
    raw.send_frame(0, &attach(0, "windowed", Role::Receiver, "win"), &[])
        .await
        .unwrap();
    expect(&mut raw, "attach", |p| {
        matches!(p, Performative::Attach(_)).then_some(())
    })
    .await;
    // Link credit for 10, but a session window of 1 frame.
    let flow = Flow {
        next_incoming_id: Some(0),
        incoming_window: 1,
        next_outgoing_id: 0,
        outgoing_window: 1 << 20,
        handle: Some(0),
        delivery_count: Some(0),
        link_credit: Some(10),
        ..Flow::default()
    };
    raw.send_frame(0, &Performative::Flow(flow), &[])
        .await
        .unwrap();

    let conn = Connection::connect(router.addr(), ConnectOptions::default())
        .await
        .unwrap();
    let sender = conn
        .sender(Some("win"), SenderOptions::default())
        .await
        .unwrap();
    for i in 0..3 {
        within("send", sender.send(&message(format!("m{i}")), true))
            .await
            .unwrap();
    }
    assert_eventually!(
        router
            .address_stats("win")
            .await
            .is_some_and(|a| a.stats.deliveries_in == 3),
        "the router never got the three messages"
    );

    let first = expect(&mut raw, "the first transfer", |p| match p {
        Performative::Transfer(t) => Some(t),
        _ => None,
    })
    .await;
    assert_eq!(first.delivery_id, Some(0));
    // The window is used up: nothing more may come. (Waiting for an absence needs a bounded wait.)
    raw.wait = Duration::from_millis(400);
    while let Some((_, p)) = raw.next_performative().await {
        assert!(
            !matches!(p, Performative::Transfer(_)),
            "a transfer beyond the session window: {p:?}"
        );
    }
    raw.wait = STEP;
    // Open the window: the other two follow.
    let flow = Flow {
        next_incoming_id: Some(1),
        incoming_window: 10,
        next_outgoing_id: 0,
        outgoing_window: 1 << 20,
        ..Flow::default()
    };
    raw.send_frame(0, &Performative::Flow(flow), &[])
        .await
        .unwrap();
    for id in 1..3 {
        let t = expect(
            &mut raw,
            "a transfer after the window opened",
            |p| match p {
                Performative::Transfer(t) => Some(t),
                _ => None,
            },
        )
        .await;
        assert_eq!(t.delivery_id, Some(id));
    }
}

// ---- errors carried in detach ----

/// An attach (role sender, handle 0) whose target is a transaction `coordinator`, encoded by hand: the codec
/// cannot encode one. Fields: name "txn", handle 0, role sender, snd/rcv-settle-mode null, source {}, target
/// coordinator {}, and the mandatory initial-delivery-count 0.
fn coordinator_attach_frame(channel: u16) -> Vec<u8> {
    let mut body = vec![0x00, 0x53, 0x12]; // attach
    let fields: Vec<u8> = [
        &[0xa1, 0x03, b't', b'x', b'n'][..], // name
        &[0x43],                             // handle 0
        &[0x42],                             // role: sender
        &[0x40, 0x40],                       // settle modes: default
        &[0x00, 0x53, 0x28, 0x45],           // source: an empty source list
        &[0x00, 0x53, 0x30, 0x45],           // target: coordinator
        &[0x40, 0x40],                       // unsettled, incomplete-unsettled
        &[0x43],                             // initial-delivery-count 0
    ]
    .concat();
    body.push(0xc0);
    body.push((fields.len() + 1) as u8);
    body.push(10); // field count
    body.extend_from_slice(&fields);
    let mut frame = Vec::with_capacity(body.len() + 8);
    frame.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
    frame.extend_from_slice(&[2, 0]);
    frame.extend_from_slice(&channel.to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

#[tokio::test]
async fn a_coordinator_attach_is_refused_with_not_implemented_on_the_link() {
    let router = TestRouter::start().await;
    let mut raw = Connection::raw(router.addr()).await.unwrap();
    raw.open("txn-test").await.unwrap();
    raw.begin(0).await.unwrap();
    raw.send_bytes(&coordinator_attach_frame(0)).await.unwrap();

    // A refusal is an attach with a null target, then a detach with the reason; the connection carries on.
    let (_, reply) = raw
        .next_performative()
        .await
        .expect("an answer to the coordinator attach");
    match reply {
        Performative::Attach(a) => {
            assert_eq!(a.handle, 0);
            assert!(
                a.target.is_none(),
                "a refused attach has a null target: {a:?}"
            );
        }
        Performative::Close(c) => {
            panic!("the router closed the whole connection for one unsupported link: {c:?}")
        }
        other => panic!("expected attach, got {other:?}"),
    }
    let detach = expect(&mut raw, "detach", |p| match p {
        Performative::Detach(d) => Some(d),
        _ => None,
    })
    .await;
    assert_eq!(detach.handle, 0);
    let error = detach.error.expect("the detach carries the reason");
    assert_eq!(error.condition.as_str(), condition::NOT_IMPLEMENTED);
    // The session is still usable.
    raw.send_frame(0, &attach(1, "after-txn", Role::Receiver, "after/txn"), &[])
        .await
        .unwrap();
    let a = expect(&mut raw, "attach", |p| match p {
        Performative::Attach(a) => Some(a),
        _ => None,
    })
    .await;
    assert_eq!(a.handle, 1);
}

// ---- drain ----

#[tokio::test]
async fn draining_with_nothing_queued_returns_credit_zero_and_advances_the_delivery_count() {
    let router = TestRouter::start().await;
    let mut raw = Connection::raw(router.addr()).await.unwrap();
    raw.open("drain-test").await.unwrap();
    raw.begin(0).await.unwrap();
    raw.send_frame(0, &attach(0, "drainer", Role::Receiver, "drain/q"), &[])
        .await
        .unwrap();
    expect(&mut raw, "attach", |p| {
        matches!(p, Performative::Attach(_)).then_some(())
    })
    .await;
    raw.send_frame(0, &link_flow(0, 0, 10, true), &[])
        .await
        .unwrap();
    let flow = expect(&mut raw, "the drained flow", |p| match p {
        Performative::Flow(f) => Some(f),
        _ => None,
    })
    .await;
    assert_eq!(flow.handle, Some(0));
    assert_eq!(flow.link_credit, Some(0));
    assert_eq!(flow.delivery_count, Some(10));
}

#[tokio::test]
async fn client_drain_with_nothing_queued_completes_with_no_deliveries() {
    let shoal = TestShoal::start().await;
    let conn = Connection::connect(shoal.amqp(), ConnectOptions::default())
        .await
        .unwrap();
    let receiver = conn.receiver("drain/client", 10).await.unwrap();
    let arrived = within("drain", receiver.drain()).await.unwrap();
    assert_eq!(arrived, 0);
    assert_eq!(receiver.credit(), 0);
    // The link still works after a drain.
    receiver.flow(1).await.unwrap();
    let sender = conn
        .sender(Some("drain/client"), SenderOptions::default())
        .await
        .unwrap();
    within("send", sender.send(&message("after drain"), true))
        .await
        .unwrap();
    let got = within("receive after drain", receiver.recv())
        .await
        .unwrap();
    assert_eq!(
        got.message().unwrap().body,
        Body::Data("after drain".into())
    );
}
