use std::io::Write;

use super::*;

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn the_file_gives_every_mesh_setting() {
    let f = file(
        "routerId: a\nmode: edge\ninterRouterListen: 127.0.0.1:55672\nconnect:\n  - inter-router://127.0.0.1:5001?cost=3\n  - edge://127.0.0.1:5002\n",
    );
    let s = MeshFlags::default().resolve(Some(f.path())).unwrap();
    assert_eq!(s.router_id.as_deref(), Some("a"));
    assert_eq!(s.mode, Mode::Edge);
    assert_eq!(
        s.inter_router_listen,
        Some("127.0.0.1:55672".parse().unwrap())
    );
    assert_eq!(
        s.connect,
        vec![
            (PeerRole::InterRouter, "127.0.0.1:5001".parse().unwrap(), 3),
            (PeerRole::Edge, "127.0.0.1:5002".parse().unwrap(), 1),
        ]
    );
}

#[test]
fn flags_win_over_the_file_and_connects_add_up() {
    let f = file("routerId: a\nmode: edge\nconnect: [\"inter-router://127.0.0.1:5001\"]\n");
    let flags = MeshFlags {
        router_id: Some("b".into()),
        mode: Some(Mode::Interior),
        inter_router_listen: None,
        connect: vec![(PeerRole::InterRouter, "127.0.0.1:5003".parse().unwrap(), 1)],
    };
    let s = flags.resolve(Some(f.path())).unwrap();
    assert_eq!(s.router_id.as_deref(), Some("b"));
    assert_eq!(s.mode, Mode::Interior);
    assert_eq!(s.connect.len(), 2);
}

#[test]
fn without_a_file_the_defaults_hold() {
    let s = MeshFlags::default().resolve(None).unwrap();
    assert_eq!(s.mode, Mode::Interior);
    assert!(s.router_id.is_none() && s.connect.is_empty());
}

#[test]
fn mistakes_name_the_key() {
    let unknown = file("routerid: a\n");
    let err = format!(
        "{:#}",
        MeshFlags::default()
            .resolve(Some(unknown.path()))
            .unwrap_err()
    );
    assert!(err.contains("routerid"), "{err}");

    let bad_peer = file("connect:\n  - inter-router://127.0.0.1:5001\n  - tcp://x:1\n");
    let err = format!(
        "{:#}",
        MeshFlags::default()
            .resolve(Some(bad_peer.path()))
            .unwrap_err()
    );
    assert!(
        err.contains("connect[1]") && err.contains("tcp://x:1"),
        "{err}"
    );

    let bad_mode = file("mode: hub\n");
    let err = format!(
        "{:#}",
        MeshFlags::default()
            .resolve(Some(bad_mode.path()))
            .unwrap_err()
    );
    assert!(err.contains("mode") && err.contains("hub"), "{err}");

    let bad_cost = file("connect: [\"inter-router://127.0.0.1:5001?cost=0\"]\n");
    assert!(MeshFlags::default().resolve(Some(bad_cost.path())).is_err());
}
