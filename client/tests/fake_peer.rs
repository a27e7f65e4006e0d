//! The client against a scripted peer, for behaviour a well-behaved router never provokes:
//! small windows and frames, credit violations, remote errors, heartbeats.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use shoal_amqp::{
    condition, encode_frame, parse_amqp_frame, AmqpError, Attach, Begin, Close, DeliveryState,
    Disposition, Flow, Open, Performative, Role, Source, Target, Transfer, AMQP_HEADER,
};
use shoal_client::handshake::{read_frame, read_header};
use shoal_client::{ClientError, ConnectOptions, Connection, SenderOptions};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

struct Peer {
    stream: TcpStream,
    rbuf: BytesMut,
}

impl Peer {
    /// Accepts one connection and answers its `open` and `begin` (with `open` and `begin`).
    async fn accept(listener: &TcpListener, open: Open, begin: Begin) -> Peer {
        let (stream, _) = listener.accept().await.unwrap();
        let mut peer = Peer {
            stream,
            rbuf: BytesMut::new(),
        };
        read_header(&mut peer.stream, &mut peer.rbuf, AMQP_HEADER)
            .await
            .unwrap();
        peer.stream.write_all(&AMQP_HEADER).await.unwrap();
        assert!(matches!(peer.next().await, Performative::Open(_)));
        assert!(matches!(peer.next().await, Performative::Begin(_)));
        peer.send(Performative::Open(open), &[]).await;
        peer.send(
            Performative::Begin(Begin {
                remote_channel: Some(0),
                ..begin
            }),
            &[],
        )
        .await;
        peer
    }

    async fn frame(&mut self) -> (Option<Performative>, Bytes) {
        let frame = timeout(WAIT, read_frame(&mut self.stream, &mut self.rbuf, u32::MAX))
            .await
            .expect("a frame in time")
            .unwrap();
        let f = parse_amqp_frame(frame).unwrap();
        (f.performative, f.payload)
    }

    /// The next performative (heartbeats skipped).
    async fn next(&mut self) -> Performative {
        loop {
            if let (Some(p), _) = self.frame().await {
                return p;
            }
        }
    }

    async fn send(&mut self, p: Performative, payload: &[u8]) {
        let mut buf = BytesMut::new();
        encode_frame(&mut buf, 0, &p, payload);
        self.stream.write_all(&buf).await.unwrap();
    }

    /// Answers the client's attach as a healthy peer would.
    async fn answer_attach(&mut self) -> Attach {
        let Performative::Attach(a) = self.next().await else {
            panic!("expected attach")
        };
        let reply = Attach {
            name: a.name.clone(),
            handle: 5,
            role: match a.role {
                Role::Sender => Role::Receiver,
                Role::Receiver => Role::Sender,
            },
            source: Some(Box::new(Source::default())),
            target: Some(Box::new(Target::default())),
            initial_delivery_count: Some(0),
            ..Attach::default()
        };
        self.send(Performative::Attach(reply), &[]).await;
        a
    }
}

fn window(next_incoming_id: u32, incoming_window: u32) -> Flow {
    Flow {
        next_incoming_id: Some(next_incoming_id),
        incoming_window,
        next_outgoing_id: 0,
        outgoing_window: u32::MAX,
        ..Flow::default()
    }
}

async fn listen() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

fn begin(incoming_window: u32) -> Begin {
    Begin {
        incoming_window,
        outgoing_window: u32::MAX,
        ..Begin::default()
    }
}

#[tokio::test]
async fn respects_the_peer_frame_size_and_session_window() {
    let (listener, addr) = listen().await;
    let open = Open {
        container_id: "peer".into(),
        max_frame_size: 512,
        ..Open::default()
    };
    let client = tokio::spawn(async move {
        let conn = Connection::connect(addr, ConnectOptions::default())
            .await
            .unwrap();
        let sender = conn
            .sender(Some("a"), SenderOptions::default())
            .await
            .unwrap();
        let d = sender.send(vec![7u8; 2000], false).await.unwrap();
        (conn, sender, d.outcome().await)
    });
    let mut peer = Peer::accept(&listener, open, begin(3)).await;
    peer.answer_attach().await;
    peer.send(
        Performative::Flow(Flow {
            handle: Some(5),
            delivery_count: Some(0),
            link_credit: Some(10),
            ..window(0, 3)
        }),
        &[],
    )
    .await;
    let mut payload = Vec::new();
    for i in 0..3 {
        let (Some(Performative::Transfer(t)), p) = peer.frame().await else {
            panic!("expected transfer {i}")
        };
        assert!(t.more, "2000 bytes do not fit three 512-byte frames");
        assert!(p.len() <= 512 - 30);
        payload.extend_from_slice(&p);
    }
    // Ask for the client's flow: it must come before any fourth transfer (the window is shut).
    peer.send(
        Performative::Flow(Flow {
            echo: true,
            ..window(3, 0)
        }),
        &[],
    )
    .await;
    assert!(
        matches!(peer.next().await, Performative::Flow(_)),
        "no transfer beyond the window"
    );
    peer.send(Performative::Flow(window(3, 100)), &[]).await;
    loop {
        let (Some(Performative::Transfer(t)), p) = peer.frame().await else {
            panic!("expected transfer")
        };
        payload.extend_from_slice(&p);
        if !t.more {
            break;
        }
    }
    assert_eq!(payload, vec![7u8; 2000]);
    peer.send(
        Performative::Disposition(Disposition {
            role: Role::Receiver,
            first: 0,
            last: None,
            settled: true,
            state: Some(DeliveryState::Accepted),
            batchable: false,
        }),
        &[],
    )
    .await;
    let (_conn, _sender, outcome) = timeout(WAIT, client).await.unwrap().unwrap();
    assert_eq!(outcome.unwrap(), DeliveryState::Accepted);
}

#[tokio::test]
async fn ranged_and_unsettled_dispositions() {
    let (listener, addr) = listen().await;
    let open = Open {
        container_id: "peer".into(),
        ..Open::default()
    };
    let client = tokio::spawn(async move {
        let conn = Connection::connect(addr, ConnectOptions::default())
            .await
            .unwrap();
        let sender = conn
            .sender(Some("a"), SenderOptions::default())
            .await
            .unwrap();
        let mut ds = Vec::new();
        for i in 0..6u8 {
            ds.push(sender.send(vec![i], false).await.unwrap());
        }
        let mut outcomes = Vec::new();
        for d in ds {
            outcomes.push(d.outcome().await.unwrap());
        }
        (conn, outcomes)
    });
    let mut peer = Peer::accept(&listener, open, begin(100)).await;
    peer.answer_attach().await;
    let credit = Flow {
        handle: Some(5),
        delivery_count: Some(0),
        link_credit: Some(6),
        ..window(0, 100)
    };
    peer.send(Performative::Flow(credit), &[]).await;
    for i in 0..6 {
        let Performative::Transfer(t) = peer.next().await else {
            panic!("transfer")
        };
        assert_eq!(t.delivery_id, Some(i));
    }
    let accept = Disposition {
        role: Role::Receiver,
        first: 0,
        last: Some(4),
        settled: true,
        state: Some(DeliveryState::Accepted),
        batchable: false,
    };
    peer.send(Performative::Disposition(accept), &[]).await;
    // Rejected but not settled (receiver settles second): the client must settle it.
    let reject = Disposition {
        role: Role::Receiver,
        first: 5,
        last: None,
        settled: false,
        state: Some(DeliveryState::Rejected { error: None }),
        batchable: false,
    };
    peer.send(Performative::Disposition(reject), &[]).await;
    let Performative::Disposition(d) = peer.next().await else {
        panic!("expected the client's settling disposition")
    };
    assert_eq!((d.role, d.first, d.settled), (Role::Sender, 5, true));
    let (_conn, outcomes) = timeout(WAIT, client).await.unwrap().unwrap();
    let mut expected = vec![DeliveryState::Accepted; 5];
    expected.push(DeliveryState::Rejected { error: None });
    assert_eq!(outcomes, expected);
}

#[tokio::test]
async fn transfer_without_credit_detaches_the_link() {
    let (listener, addr) = listen().await;
    let open = Open {
        container_id: "peer".into(),
        ..Open::default()
    };
    let client = tokio::spawn(async move {
        let conn = Connection::connect(addr, ConnectOptions::default())
            .await
            .unwrap();
        let receiver = conn.receiver("a", 1).await.unwrap();
        let first = receiver.recv().await.unwrap();
        let second = receiver.recv().await;
        (conn, first, second)
    });
    let mut peer = Peer::accept(&listener, open, begin(100)).await;
    peer.answer_attach().await;
    let Performative::Flow(f) = peer.next().await else {
        panic!("credit flow")
    };
    assert_eq!(f.link_credit, Some(1));
    for id in 0..2 {
        let t = Transfer {
            handle: 5,
            delivery_id: Some(id),
            delivery_tag: Some(Bytes::from_static(b"t")),
            message_format: Some(0),
            ..Transfer::default()
        };
        peer.send(Performative::Transfer(t), b"\x00\x53\x77\x40")
            .await;
    }
    let Performative::Detach(d) = peer.next().await else {
        panic!("expected detach")
    };
    assert_eq!(
        d.error.map(|e| e.condition.0),
        Some(condition::LINK_TRANSFER_LIMIT_EXCEEDED.to_string())
    );
    let (_conn, first, second) = timeout(WAIT, client).await.unwrap().unwrap();
    assert_eq!(first.delivery_id, 0);
    assert!(second.is_err(), "{second:?}");
}

#[tokio::test]
async fn a_remote_close_fails_pending_calls() {
    let (listener, addr) = listen().await;
    let open = Open {
        container_id: "peer".into(),
        ..Open::default()
    };
    let client = tokio::spawn(async move {
        let conn = Connection::connect(addr, ConnectOptions::default())
            .await
            .unwrap();
        let receiver = conn.receiver("a", 1).await.unwrap();
        let err = receiver.recv().await.unwrap_err();
        (conn.closed().await, err)
    });
    let mut peer = Peer::accept(&listener, open, begin(100)).await;
    peer.answer_attach().await;
    let _credit = peer.next().await;
    let error = AmqpError::new(condition::INTERNAL_ERROR, "boom");
    peer.send(
        Performative::Close(Close {
            error: Some(error.clone()),
        }),
        &[],
    )
    .await;
    assert!(matches!(
        peer.next().await,
        Performative::Close(Close { error: None })
    ));
    let (closed, recv_err) = timeout(WAIT, client).await.unwrap().unwrap();
    assert!(
        matches!(&closed, ClientError::Remote(e) if *e == error),
        "{closed:?}"
    );
    assert_eq!(recv_err.condition(), Some(condition::INTERNAL_ERROR));
}

#[tokio::test]
async fn sends_heartbeats_within_the_peer_idle_timeout() {
    let (listener, addr) = listen().await;
    let open = Open {
        container_id: "peer".into(),
        idle_time_out: Some(200),
        ..Open::default()
    };
    let client = tokio::spawn(async move {
        let conn = Connection::connect(addr, ConnectOptions::default())
            .await
            .unwrap();
        conn.closed().await
    });
    let mut peer = Peer::accept(&listener, open, begin(100)).await;
    let started = tokio::time::Instant::now();
    let (p, payload) = peer.frame().await;
    assert!(
        p.is_none() && payload.is_empty(),
        "an empty frame, got {p:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "within the idle time-out"
    );
    drop(peer);
    let err = timeout(WAIT, client).await.unwrap().unwrap();
    assert!(
        matches!(err, ClientError::ConnectionClosed | ClientError::Io(_)),
        "{err:?}"
    );
}
