//! The real binary: it prints its addresses, serves /healthz, and on SIGTERM drains and exits 0 while an AMQP
//! client is connected (the client is told `amqp:connection:forced`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::BytesMut;
use shoal_amqp::{check_frame, parse_amqp_frame, Open, Performative, AMQP_HEADER};

#[test]
fn sigterm_closes_clients_with_forced_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args([
            "standalone",
            "--amqp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--mqtt-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("shoal starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut amqp = None;
    let mut http = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(a) = line.strip_prefix("amqp listening on ") {
            amqp = Some(a.to_string());
        } else if let Some(h) = line.strip_prefix("http listening on ") {
            http = Some(h.to_string());
        } else if line == "ready" {
            break;
        }
    }
    let (amqp, http) = (
        amqp.expect("amqp address printed"),
        http.expect("http address printed"),
    );

    // /healthz answers 200 once ready.
    let mut h = TcpStream::connect(&http).unwrap();
    h.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    h.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");

    // An AMQP client that opened its connection.
    let mut c = TcpStream::connect(&amqp).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(&AMQP_HEADER).unwrap();
    let mut out = BytesMut::new();
    shoal_amqp::encode_frame(
        &mut out,
        0,
        &Performative::Open(Open {
            container_id: "sigterm-test".into(),
            ..Default::default()
        }),
        &[],
    );
    c.write_all(&out).unwrap();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let read_frame = |c: &mut TcpStream, buf: &mut BytesMut| -> Option<Performative> {
        loop {
            if buf.len() >= 8 && buf.starts_with(b"AMQP") {
                let _ = buf.split_to(8);
                continue;
            }
            if let Ok(Some(len)) = check_frame(buf, 1 << 20) {
                let frame = parse_amqp_frame(buf.split_to(len).freeze()).unwrap();
                if let Some(p) = frame.performative {
                    return Some(p);
                }
                continue;
            }
            let mut chunk = [0u8; 4096];
            match c.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    assert!(matches!(
        read_frame(&mut c, &mut buf),
        Some(Performative::Open(_))
    ));

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    while let Some(p) = read_frame(&mut c, &mut buf) {
        frames.push(p);
    }
    let close = frames.iter().find_map(|p| match p {
        Performative::Close(c) => Some(c.clone()),
        _ => None,
    });
    let condition = close
        .and_then(|c| c.error)
        .map(|e| e.condition.as_str().to_string());
    assert_eq!(condition.as_deref(), Some("amqp:connection:forced"));
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit status {exit:?}");
}
