//! What the chaos run reads behind the service's back at the end, without faults: every stored
//! event (`inventory-service export`, straight to the endpoint), the outbox table's rows (a
//! DynamoDB Scan of `<prefix>inventory_outbox`), and the broker's queues of this run
//! (`rabbitmqctl list_queues`).

use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

use super::common::BINARY;

/// Every event envelope in the store, in export order.
pub async fn export(data_dir: &Path, env: &[(String, String)], out: &Path) -> Vec<Value> {
    let output = tokio::process::Command::new(BINARY)
        .args(["export", "--out"])
        .arg(out)
        .arg("--data-dir")
        .arg(data_dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run export");
    assert!(
        output.status.success(),
        "export failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(out).expect("read the export");
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|line| {
            if line.get("eventId").is_some() {
                Some(line)
            } else {
                line.get("event")
                    .filter(|e| e.get("eventId").is_some())
                    .cloned()
            }
        })
        .collect()
}

/// Rows in a DynamoDB table (a paginated `Scan` with `Select: COUNT`), straight to `endpoint`.
pub async fn count_rows(endpoint: &str, table: &str) -> Result<u64, String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let mut rows = 0;
    let mut start: Option<Value> = None;
    loop {
        let mut request = json!({ "TableName": table, "Select": "COUNT" });
        if let Some(key) = start.take() {
            request["ExclusiveStartKey"] = key;
        }
        let date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let reply = client
            .post(format!("{}/", endpoint.trim_end_matches('/')))
            .header("X-Amz-Target", "DynamoDB_20120810.Scan")
            .header("Content-Type", "application/x-amz-json-1.0")
            .header("X-Amz-Date", date)
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=local/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=x",
            )
            .body(request.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let reply: Value = reply.json().await.map_err(|e| e.to_string())?;
        let count = reply["Count"]
            .as_u64()
            .ok_or_else(|| format!("scan of {table}: {reply}"))?;
        rows += count;
        match reply.get("LastEvaluatedKey") {
            Some(key) if !key.is_null() => start = Some(key.clone()),
            _ => return Ok(rows),
        }
    }
}

/// (name, messages) of the broker's queues whose name starts with `prefix`.
pub fn queues(prefix: &str) -> Vec<(String, u64)> {
    let Ok(output) = Command::new("rabbitmqctl")
        .args(["list_queues", "-q", "name", "messages"])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let name = fields.next()?;
            let messages = fields.next()?.parse().ok()?;
            name.starts_with(prefix)
                .then(|| (name.to_owned(), messages))
        })
        .collect()
}

/// Deletes the run's queues (durable ones outlive the run otherwise).
pub fn delete_queues(prefix: &str) {
    for (name, _) in queues(prefix) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_queue", &name])
            .output();
    }
}

pub fn rabbitmqctl(action: &str) -> bool {
    Command::new("rabbitmqctl")
        .arg(action)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
