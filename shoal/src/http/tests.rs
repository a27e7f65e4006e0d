use super::*;

fn state(data_dir: Option<&Path>) -> AdminState {
    AdminState::new(
        RouterHandle::placeholder(),
        Arc::new(AtomicBool::new(true)),
        data_dir.map(Path::to_owned),
    )
}

fn manifests(yaml: &str) -> Vec<Manifest> {
    manifest::parse_str(yaml, "test").unwrap()
}

const SENSORS: &str = r#"
apiVersion: shoal.dev/v1beta1
kind: Address
metadata: { name: sensors }
spec: { address: "sensors/#", type: anycast }
"#;

#[tokio::test]
async fn apply_keeps_addresses_with_active_status() {
    let state = state(None);
    let lines = apply(&state, manifests(SENSORS)).await.unwrap();
    assert_eq!(lines, ["address default/sensors configured"]);
    let a = state.address("default", "sensors").await.unwrap();
    assert_eq!(a.status.unwrap().phase.as_deref(), Some(PHASE_ACTIVE));
    assert_eq!(state.addresses().await.len(), 1);
}

#[tokio::test]
async fn apply_without_persist_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(Some(dir.path()));
    apply(&state, manifests(SENSORS)).await.unwrap();
    assert!(!dir.path().join("manifests").exists());
}

#[tokio::test]
async fn persisted_manifests_restore_and_delete_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    let first = state(Some(dir.path()));
    apply_and_persist(&first, manifests(SENSORS)).await.unwrap();
    let file = dir.path().join("manifests").join("default.sensors.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("sensors/#"), "{text}");
    assert!(
        !text.contains("status"),
        "status is not desired state: {text}"
    );

    // A crash between write and rename leaves a temp file: restore ignores and removes it.
    let tmp = dir.path().join("manifests").join(".default.other.yaml.tmp");
    std::fs::write(&tmp, "half a fi").unwrap();

    let second = state(Some(dir.path()));
    assert_eq!(restore(&second).await.unwrap(), 1);
    assert!(second.address("default", "sensors").await.is_some());
    assert!(!tmp.exists());

    let deleted = delete(&second, "default", "sensors").await.unwrap();
    assert_eq!(deleted.key(), "default/sensors");
    assert!(!file.exists());
    assert!(second.address("default", "sensors").await.is_none());
    let third = state(Some(dir.path()));
    assert_eq!(restore(&third).await.unwrap(), 0);
}

#[tokio::test]
async fn restore_without_data_dir_or_folder_is_empty() {
    assert_eq!(restore(&state(None)).await.unwrap(), 0);
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(restore(&state(Some(dir.path()))).await.unwrap(), 0);
}

#[tokio::test]
async fn restore_refuses_a_corrupt_file_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let manifests_dir = dir.path().join("manifests");
    std::fs::create_dir_all(&manifests_dir).unwrap();
    std::fs::write(
        manifests_dir.join("default.x.yaml"),
        SENSORS.replace("anycast", "fanout"),
    )
    .unwrap();
    let err = restore(&state(Some(dir.path()))).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("default.x.yaml (document 1): spec.type"),
        "{msg}"
    );
}

#[tokio::test]
async fn delete_of_a_missing_address_is_not_found() {
    let err = delete(&state(None), "default", "nope").await.unwrap_err();
    assert_eq!(err.status(), StatusCode::NOT_FOUND);
    assert_eq!(err.to_string(), "address default/nope not found");
}

#[tokio::test]
async fn hand_built_invalid_manifests_are_refused_before_anything_applies() {
    let state = state(None);
    let mut batch = manifests(SENSORS);
    let Manifest::Address(mut bad) = batch[0].clone();
    bad.metadata.name = Some("other".into());
    bad.spec.address = String::new();
    batch.push(Manifest::Address(bad));
    let err = apply(&state, batch).await.unwrap_err();
    assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        err.to_string(),
        "apply (document 2): spec.address: must not be empty"
    );
    assert!(state.addresses().await.is_empty());
}

#[test]
fn errors_map_to_statuses() {
    assert_eq!(
        AdminError::Empty("r".into()).status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        AdminError::Router(HandleError::ShuttingDown).status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let io = AdminError::Io {
        path: "x".into(),
        source: std::io::Error::other("disk full"),
    };
    assert_eq!(io.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(io.to_string(), "x: disk full");
}
