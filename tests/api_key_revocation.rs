//! A key revoked while two instances serve one store is refused by both within 2 s, though
//! each had just accepted it (and remembers what it looked up).

mod common;

use serde_json::{json, Value};
use std::time::{Duration, Instant};

use common::{backend_env, Server, BINARY};

fn api_key(server: &Server, args: &[&str]) -> String {
    let output = std::process::Command::new(BINARY)
        .arg("api-key")
        .args(args)
        .arg("--data-dir")
        .arg(&server.data_dir)
        .envs(backend_env(&server.data_dir))
        .output()
        .expect("run api-key");
    assert!(output.status.success(), "api-key {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn status_with(server: &Server, key: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/graphql", server.url))
        .bearer_auth(key)
        .json(&json!({ "query": "{ warehouses { totalCount } }" }))
        .send()
        .await
        .expect("POST /graphql");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_key_revoked_is_refused_by_every_instance_within_two_seconds() {
    let temp = tempfile::tempdir().expect("temp dir");
    let none = [("INVENTORY_ANONYMOUS_ROLE", "none")];
    let mut first = Server::start_with(temp.path(), &none).await;
    let mut second = Server::start_with(temp.path(), &none).await;
    let created = api_key(
        &first,
        &["create", "--name", "shop-frontend", "--role", "viewer"],
    );
    let secret = created.lines().last().expect("secret").trim().to_owned();
    for server in [&first, &second] {
        let (status, body) = status_with(server, &secret).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["errors"].is_null(), "{body}");
    }
    api_key(&first, &["revoke", "--name", "shop-frontend"]);
    let revoked = Instant::now();
    let mut refused_after = Vec::new();
    for server in [&second, &first] {
        loop {
            let (status, body) = status_with(server, &secret).await;
            if status == 401 {
                assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
                refused_after.push(revoked.elapsed());
                break;
            }
            assert!(
                revoked.elapsed() < Duration::from_secs(2),
                "still accepted {:?} after the revoke: {status} {body}",
                revoked.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    eprintln!(
        "refused by the second instance after {:?}, by the first after {:?}",
        refused_after[0], refused_after[1]
    );
    let listed = api_key(&first, &["list"]);
    assert!(
        listed.contains("shop-frontend") && !listed.contains(&secret),
        "{listed}"
    );
    first.terminate();
    second.terminate();
}
