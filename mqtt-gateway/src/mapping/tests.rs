use super::*;

fn dev(tenant: &str, device: &str) -> DeviceIdentity {
    DeviceIdentity {
        tenant_id: tenant.into(),
        device_id: device.into(),
        auth_id: device.into(),
    }
}

fn gw(device: &str) -> bool {
    device == "child"
}

#[test]
fn plain_topics_are_addresses_for_everyone() {
    assert_eq!(map_publish("a/b/c", None, &gw), Ok(PublishTarget::Plain));
    assert_eq!(
        map_publish("telemetryx/1", None, &gw),
        Ok(PublishTarget::Plain)
    );
}

#[test]
fn hono_topics_need_an_identity() {
    assert_eq!(
        map_publish("telemetry", None, &gw),
        Err(MapError::NotAuthorized)
    );
    assert_eq!(map_publish("e", None, &gw), Err(MapError::NotAuthorized));
    assert_eq!(
        map_subscribe("command///req/#", None, &gw),
        Err(MapError::NotAuthorized)
    );
}

#[test]
fn telemetry_and_event_forms() {
    let me = dev("acme", "d1");
    let own = |kind| {
        Ok(PublishTarget::Hono {
            kind,
            device: "d1".into(),
        })
    };
    for t in [
        "telemetry",
        "t",
        "telemetry/",
        "t//",
        "telemetry/acme/",
        "t/acme/d1",
    ] {
        assert_eq!(
            map_publish(t, Some(&me), &gw),
            own(HonoKind::Telemetry),
            "{t}"
        );
    }
    for t in ["event", "e", "e//d1"] {
        assert_eq!(map_publish(t, Some(&me), &gw), own(HonoKind::Event), "{t}");
    }
    assert_eq!(
        map_publish("t//child", Some(&me), &gw),
        Ok(PublishTarget::Hono {
            kind: HonoKind::Telemetry,
            device: "child".into()
        })
    );
    assert_eq!(
        map_publish("t//other", Some(&me), &gw),
        Err(MapError::NotAuthorized)
    );
    assert_eq!(
        map_publish("t/evil/d1", Some(&me), &gw),
        Err(MapError::NotAuthorized)
    );
    assert_eq!(
        map_publish("t/acme/d1/x", Some(&me), &gw),
        Err(MapError::Invalid)
    );
    assert_eq!(HonoKind::Event.address("acme"), "event/acme");
}

#[test]
fn command_responses() {
    let me = dev("acme", "d1");
    assert_eq!(
        map_publish("command///res/7/200", Some(&me), &gw),
        Ok(PublishTarget::CommandResponse {
            req_id: "7".into(),
            status: 200,
            device: "d1".into()
        })
    );
    assert!(matches!(
        map_publish("c///s/7/404", Some(&me), &gw),
        Ok(PublishTarget::CommandResponse { status: 404, .. })
    ));
    assert_eq!(
        map_publish("c///res/7/200", Some(&me), &gw),
        Err(MapError::Invalid)
    );
    assert_eq!(
        map_publish("command///res//200", Some(&me), &gw),
        Err(MapError::Invalid)
    );
    assert_eq!(
        map_publish("command///res/7/ok", Some(&me), &gw),
        Err(MapError::Invalid)
    );
}

#[test]
fn subscriptions() {
    let me = dev("acme", "d1");
    assert_eq!(
        map_subscribe("a/+/c/#", Some(&me), &gw),
        Ok(SubscribeTarget::Plain {
            pattern: "a/*/c/#".into()
        })
    );
    assert_eq!(
        map_subscribe("command///req/#", Some(&me), &gw),
        Ok(SubscribeTarget::Commands {
            device: "d1".into(),
            short: false,
            via_gateway: false
        })
    );
    assert_eq!(
        map_subscribe("c///q/#", Some(&me), &gw),
        Ok(SubscribeTarget::Commands {
            device: "d1".into(),
            short: true,
            via_gateway: false
        })
    );
    assert_eq!(
        map_subscribe("command//child/req/#", Some(&me), &gw),
        Ok(SubscribeTarget::Commands {
            device: "child".into(),
            short: false,
            via_gateway: true
        })
    );
    assert_eq!(
        map_subscribe("command//+/req/#", Some(&me), &gw),
        Ok(SubscribeTarget::GatewayCommands { short: false })
    );
    assert_eq!(
        map_subscribe("c/acme/+/q/#", Some(&me), &gw),
        Ok(SubscribeTarget::GatewayCommands { short: true })
    );
    assert_eq!(
        map_subscribe("command/other/+/req/#", Some(&me), &gw),
        Err(MapError::NotAuthorized)
    );
    assert_eq!(
        map_subscribe("telemetry/#", Some(&me), &gw),
        Err(MapError::NotAuthorized)
    );
    assert_eq!(
        map_subscribe("command///q/#", Some(&me), &gw),
        Err(MapError::Invalid)
    );
}

#[test]
fn command_topics() {
    assert_eq!(
        command_topic(false, None, "1a", "setVolume"),
        "command///req/1a/setVolume"
    );
    assert_eq!(command_topic(true, None, "", "reboot"), "c///q//reboot");
    assert_eq!(
        command_topic(false, Some("child"), "2", "x"),
        "command//child/req/2/x"
    );
}

#[test]
fn a_gateway_subscription_takes_the_device_from_the_address() {
    assert_eq!(gateway_commands_pattern("acme"), "command/acme/#");
    assert_eq!(command_device("command/acme/child", "acme"), Some("child"));
    assert_eq!(command_device("command/acme/dev.1", "acme"), Some("dev.1"));
    assert_eq!(command_device("command/acme", "acme"), None);
    assert_eq!(command_device("command/acme/", "acme"), None);
    assert_eq!(command_device("command/acme/a/b", "acme"), None);
    assert_eq!(command_device("command/acmex/a", "acme"), None);
    assert_eq!(command_device("command/other/a", "acme"), None);
}

#[test]
fn a_delivery_topic_is_the_to_then_the_address_then_an_exact_filter() {
    let f = "sensors/+/temp";
    let to_and_address = delivery_topic(Some("sensors/a/temp"), Some("sensors/b/temp"), f);
    assert_eq!(to_and_address, Some("sensors/a/temp"));
    // A named link's message without `to`: the address the core matched.
    assert_eq!(
        delivery_topic(None, Some("sensors/room1/temp"), f),
        Some("sensors/room1/temp")
    );
    assert_eq!(
        delivery_topic(None, Some("sensors/room1/temp"), "#"),
        Some("sensors/room1/temp")
    );
    // A `to` that is no topic of this filter (the message was sent on a link to another address).
    assert_eq!(
        delivery_topic(Some("elsewhere"), Some("sensors/b/temp"), f),
        Some("sensors/b/temp")
    );
    assert_eq!(delivery_topic(Some("a/+"), None, "a/b"), Some("a/b"));
    assert_eq!(delivery_topic(None, None, "a/b"), Some("a/b"));
    assert_eq!(delivery_topic(None, None, f), None);
    // The core also splits at `.`: an address its pattern matched may still be no topic of the filter.
    assert_eq!(delivery_topic(None, Some("sensors.room1.temp"), f), None);
}
