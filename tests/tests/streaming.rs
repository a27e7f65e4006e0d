//! Large messages stream through the router frame by frame: the receiver sees the first frames of a delivery
//! before the sender has sent its last, and an abort mid-way is passed on. Both ends are raw AMQP so every frame
//! is visible.

use std::time::Duration;

use bytes::Bytes;
use shoal_amqp::{
    Attach, DeliveryState, Disposition, Flow, Performative, Role, Source, Target, Transfer,
};
use shoal_client::{Connection, RawConnection};
use shoal_test_support::TestShoal;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(10);

async fn raw_session(shoal: &TestShoal, name: &str) -> RawConnection {
    let mut raw = timeout(T, Connection::raw(shoal.amqp()))
        .await
        .unwrap()
        .unwrap();
    raw.open(name).await.unwrap();
    raw.begin(0).await.unwrap();
    raw
}

async fn next(raw: &mut RawConnection) -> Performative {
    loop {
        let (_, p) = timeout(T, raw.next_performative())
            .await
            .unwrap()
            .expect("a frame");
        // Flows carry credit and windows; the test waits for what it asserts on.
        if !matches!(p, Performative::Flow(_)) {
            return p;
        }
    }
}

async fn next_transfer(raw: &mut RawConnection) -> (Transfer, Bytes) {
    loop {
        let frame = timeout(T, raw.next_frame())
            .await
            .unwrap()
            .expect("a frame");
        if let Some(Performative::Transfer(t)) = frame.performative {
            return (t, frame.payload);
        }
    }
}

async fn wait_credit(raw: &mut RawConnection) {
    loop {
        let (_, p) = timeout(T, raw.next_performative())
            .await
            .unwrap()
            .expect("a frame");
        if let Performative::Flow(Flow {
            handle: Some(0),
            link_credit: Some(c),
            ..
        }) = p
        {
            if c > 0 {
                return;
            }
        }
    }
}

fn transfer(delivery_id: Option<u32>, more: bool, aborted: bool) -> Performative {
    Performative::Transfer(Transfer {
        handle: 0,
        delivery_id,
        delivery_tag: delivery_id.map(|id| Bytes::from(id.to_be_bytes().to_vec())),
        message_format: delivery_id.map(|_| 0),
        more,
        aborted,
        ..Default::default()
    })
}

#[tokio::test]
async fn frames_of_a_large_delivery_reach_the_receiver_before_the_sender_finishes() {
    let shoal = TestShoal::start().await;
    let mut rx = raw_session(&shoal, "rx").await;
    let attach = Attach {
        name: "rx".into(),
        handle: 0,
        role: Role::Receiver,
        source: Some(Box::new(Source {
            address: Some("stream".into()),
            ..Default::default()
        })),
        target: Some(Box::default()),
        ..Default::default()
    };
    rx.send_frame(0, &Performative::Attach(attach), &[])
        .await
        .unwrap();
    assert!(matches!(next(&mut rx).await, Performative::Attach(_)));
    let flow = Flow {
        next_incoming_id: Some(0),
        incoming_window: 1 << 20,
        next_outgoing_id: 0,
        outgoing_window: 1 << 20,
        handle: Some(0),
        delivery_count: Some(0),
        link_credit: Some(10),
        ..Default::default()
    };
    rx.send_frame(0, &Performative::Flow(flow), &[])
        .await
        .unwrap();

    let mut tx = raw_session(&shoal, "tx").await;
    let attach = Attach {
        name: "tx".into(),
        handle: 0,
        role: Role::Sender,
        source: Some(Box::default()),
        target: Some(Box::new(Target {
            address: Some("stream".into()),
            ..Default::default()
        })),
        initial_delivery_count: Some(0),
        ..Default::default()
    };
    tx.send_frame(0, &Performative::Attach(attach), &[])
        .await
        .unwrap();
    wait_credit(&mut tx).await;

    // Delivery 0: two frames; the receiver sees the first before the second is sent.
    tx.send_frame(0, &transfer(Some(0), true, false), b"first half ")
        .await
        .unwrap();
    let (t, payload) = next_transfer(&mut rx).await;
    assert!(
        t.more,
        "the router passes the first frame on with more=true"
    );
    assert_eq!(&payload[..], b"first half ");
    let receiver_delivery_id = t
        .delivery_id
        .expect("the first frame carries the delivery-id");
    tx.send_frame(0, &transfer(None, false, false), b"second half")
        .await
        .unwrap();
    let (t, payload) = next_transfer(&mut rx).await;
    assert!(!t.more);
    assert_eq!(&payload[..], b"second half");

    // The receiver accepts; the sender hears it.
    let accept = Disposition {
        role: Role::Receiver,
        first: receiver_delivery_id,
        settled: true,
        state: Some(DeliveryState::Accepted),
        ..Default::default()
    };
    rx.send_frame(0, &Performative::Disposition(accept), &[])
        .await
        .unwrap();
    match next(&mut tx).await {
        Performative::Disposition(d) => {
            assert_eq!((d.first, d.state), (0, Some(DeliveryState::Accepted)));
        }
        other => panic!("expected the outcome, got {other:?}"),
    }

    // Delivery 1 is aborted half way: the receiver is told, and delivery 2 then goes through whole.
    tx.send_frame(0, &transfer(Some(1), true, false), b"doomed")
        .await
        .unwrap();
    let (t, _) = next_transfer(&mut rx).await;
    assert!(t.more && !t.aborted);
    tx.send_frame(0, &transfer(None, false, true), &[])
        .await
        .unwrap();
    let (t, _) = next_transfer(&mut rx).await;
    assert!(t.aborted, "the abort is passed on");
    tx.send_frame(0, &transfer(Some(2), false, false), b"whole")
        .await
        .unwrap();
    let (t, payload) = next_transfer(&mut rx).await;
    assert!(!t.more && !t.aborted);
    assert_eq!(&payload[..], b"whole");
}
