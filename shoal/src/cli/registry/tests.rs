//! The registry commands against the registry's real HTTP API on 127.0.0.1:0.

use shoal_registry::{AuthError, Registry, RegistryConfig};

use super::{run, RegistryCommand};

/// Serves `registry`'s HTTP API on a free port (on its own runtime thread); returns the base URL.
fn serve(registry: Registry) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, shoal_registry::router(registry))
                .await
                .unwrap();
        });
    });
    format!("http://{}", rx.recv().unwrap())
}

fn exec(server: &str, command: RegistryCommand) -> anyhow::Result<String> {
    let mut out = Vec::new();
    run(server, command, &mut out)?;
    Ok(String::from_utf8(out).unwrap())
}

#[test]
fn a_device_created_from_the_cli_can_log_in() {
    let registry = Registry::in_memory(RegistryConfig::default());
    let server = serve(registry.clone());
    exec(
        &server,
        RegistryCommand::CreateTenant {
            tenant: "acme".into(),
            disabled: false,
        },
    )
    .unwrap();
    let created = exec(
        &server,
        RegistryCommand::CreateDevice {
            tenant: "acme".into(),
            device: "sensor-1".into(),
            via: vec![],
            disabled: false,
        },
    )
    .unwrap();
    assert_eq!(created, "device acme/sensor-1 created\n");
    let set = exec(
        &server,
        RegistryCommand::SetPassword {
            tenant: "acme".into(),
            device: "sensor-1".into(),
            auth_id: Some("s1".into()),
            password: "s3cret".into(),
        },
    )
    .unwrap();
    assert_eq!(set, "device acme/sensor-1 logs in as s1@acme\n");

    let who = registry
        .authenticate_password("acme", "s1", "s3cret")
        .unwrap();
    assert_eq!(who.device_id, "sensor-1");
    assert!(matches!(
        registry.authenticate_password("acme", "s1", "wrong"),
        Err(AuthError::BadCredentials)
    ));
    let shown = exec(
        &server,
        RegistryCommand::GetCredentials {
            tenant: "acme".into(),
            device: "sensor-1".into(),
        },
    )
    .unwrap();
    assert!(shown.contains("\"auth-id\": \"s1\""), "{shown}");
    assert!(
        !shown.contains("s3cret") && !shown.contains("$2"),
        "secrets must never be shown: {shown}"
    );
}

#[test]
fn errors_carry_the_servers_message() {
    let server = serve(Registry::in_memory(RegistryConfig::default()));
    let err = exec(
        &server,
        RegistryCommand::GetTenant {
            tenant: "nobody".into(),
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("nobody") || err.to_string().contains("404"),
        "{err}"
    );
    exec(
        &server,
        RegistryCommand::CreateTenant {
            tenant: "t".into(),
            disabled: false,
        },
    )
    .unwrap();
    let again = exec(
        &server,
        RegistryCommand::CreateTenant {
            tenant: "t".into(),
            disabled: false,
        },
    );
    assert!(again.is_err(), "a second create is a conflict");
    let bad = exec(
        &server,
        RegistryCommand::GetTenant {
            tenant: "a/b".into(),
        },
    )
    .unwrap_err();
    assert!(bad.to_string().contains("not a valid id"), "{bad}");
}

#[test]
fn deleting_a_tenant_removes_its_devices() {
    let registry = Registry::in_memory(RegistryConfig::default());
    let server = serve(registry.clone());
    exec(
        &server,
        RegistryCommand::CreateTenant {
            tenant: "t".into(),
            disabled: false,
        },
    )
    .unwrap();
    exec(
        &server,
        RegistryCommand::CreateDevice {
            tenant: "t".into(),
            device: "d".into(),
            via: vec!["gw".into()],
            disabled: false,
        },
    )
    .unwrap();
    let device = exec(
        &server,
        RegistryCommand::GetDevice {
            tenant: "t".into(),
            device: "d".into(),
        },
    )
    .unwrap();
    assert!(device.contains("\"gw\""), "{device}");
    assert_eq!(
        exec(
            &server,
            RegistryCommand::DeleteTenant { tenant: "t".into() }
        )
        .unwrap(),
        "tenant t deleted\n"
    );
    assert!(registry.device("t", "d").is_err());
}
