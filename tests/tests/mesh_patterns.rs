//! Pattern subscribers across the mesh (ADR 0009, "pattern subscribers"): a router with subscribers of a
//! pattern (the MQTT gateway's `+`/`#`) advertises it, and the others copy every matching message there, one
//! copy per router and pattern along the multicast tree of the message's origin.

mod common;

use common::mesh::*;
use common::*;

fn to(address: &str, n: u32) -> MessageBuilder {
    MessageBuilder {
        to: Some(address.into()),
        ..numbered(n)
    }
}

fn body(n: u32) -> Vec<u8> {
    match numbered(n).body {
        Body::Data(b) => b.to_vec(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn each_subscriber_gets_one_copy_however_many_paths_lead_to_it() {
    // A triangle: from A, B and C are both one hop away and B - C is a third path.
    let mesh = triangle().await;
    let at_b = PatternSub::attach(&mesh, "B", "sensors/*", 50).await;
    let at_c = PatternSub::attach(&mesh, "C", "sensors/*", 50).await;
    let deep_c = PatternSub::attach(&mesh, "C", "sensors/#", 50).await;
    await_proxies(&mesh, "A", "B", 1).await;
    await_proxies(&mesh, "A", "C", 2).await;

    let a = client(&mesh, "A").await;
    let named = sender_to(&a, "sensors/t1").await;
    for n in 1..=3u32 {
        let d = named.send(&numbered(n), false).await.unwrap();
        // The next copy each sees is this message: none came twice.
        for sub in [&at_b, &at_c, &deep_c] {
            assert_eq!(sub.accept_next().await, (body(n), "sensors/t1".into()));
        }
        assert_accepted(d).await;
    }

    // From B, which has a subscriber itself: it gets its copy there, C gets one from B.
    let b = client(&mesh, "B").await;
    let anon = b.sender(None, SenderOptions::default()).await.unwrap();
    let d = anon.send(&to("sensors/t2", 4), false).await.unwrap();
    for sub in [&at_b, &at_c, &deep_c] {
        assert_eq!(sub.accept_next().await, (body(4), "sensors/t2".into()));
    }
    assert_accepted(d).await;
    let d = anon.send(&to("sensors/t2", 5), false).await.unwrap();
    for sub in [&at_b, &at_c, &deep_c] {
        assert_eq!(sub.accept_next().await.0, body(5));
    }
    assert_accepted(d).await;
    mesh.shutdown().await;
}

#[tokio::test]
async fn copies_cross_routers_without_subscribers_on_the_way() {
    let mesh = line().await;
    let sub = PatternSub::attach(&mesh, "C", "fleet/*/pos", 50).await;
    await_proxies(&mesh, "A", "B", 1).await;
    await_proxies(&mesh, "B", "C", 1).await;
    let a = client(&mesh, "A").await;
    let s = sender_to(&a, "fleet/9/pos").await;
    let d = s.send(&numbered(1), false).await.unwrap();
    assert_eq!(sub.accept_next().await, (body(1), "fleet/9/pos".into()));
    assert_accepted(d).await;
    // Presettled too.
    s.send(&numbered(2), true).await.unwrap();
    assert_eq!(sub.accept_next().await.0, body(2));

    // The subscriber goes: the proxies close behind it.
    drop(sub);
    await_proxies(&mesh, "A", "B", 0).await;
    await_proxies(&mesh, "B", "C", 0).await;
    mesh.shutdown().await;
}

#[tokio::test]
async fn an_edges_subscriber_gets_what_another_edge_sends_through_two_interiors() {
    // E1 - I1 - I2 - E2: the MQTT gateway on E1, a device publishing through a gateway on E2.
    let mesh = two_edges().await;
    let sub = PatternSub::attach(&mesh, "E1", "plant/#", 50).await;
    await_proxies(&mesh, "I2", "I1", 1).await;
    await_proxies(&mesh, "I1", "E1", 1).await;
    let e2 = client(&mesh, "E2").await;
    let s = e2.sender(None, SenderOptions::default()).await.unwrap();
    for n in 1..=3u32 {
        let d = s.send(&to("plant/3/alarm", n), false).await.unwrap();
        assert_eq!(sub.accept_next().await, (body(n), "plant/3/alarm".into()));
        assert_accepted(d).await;
    }
    mesh.shutdown().await;
}
