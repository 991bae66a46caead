//! The service under test as a separate process: the release `inventory-service` binary started
//! on a data directory (and table/queue prefix) of its own, on a random port; its `verify`
//! command; its resident memory; and the local DynamoDB endpoint when none is given.

use anyhow::Context as _;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Where the service keeps its state and how it is reached: one per data set.
#[derive(Clone, Debug)]
pub struct Instance {
    pub data_dir: PathBuf,
    /// Table and queue prefix, unique to this data set.
    pub prefix: String,
    pub store: String,
    pub dynamodb_endpoint: Option<String>,
    pub bus: String,
    pub amqp_url: String,
    /// Run the service with `INVENTORY_DYNAMODB_REPORT_CAPACITY`: every DynamoDB call asks for
    /// its consumed capacity, counted in `/metrics` (the cost section).
    pub report_capacity: bool,
    /// `INVENTORY_OUTBOX_LEASE_MS` when set: how long the relay's outbox shard leases last.
    pub outbox_lease_ms: Option<u64>,
}

impl Instance {
    pub fn new(root: &Path, name: &str, template: &Instance) -> anyhow::Result<Self> {
        let data_dir = root.join(name);
        std::fs::create_dir_all(&data_dir)?;
        let unique = uuid::Uuid::now_v7().simple().to_string();
        Ok(Self {
            data_dir,
            prefix: format!("b{}{}_", name.replace(['-', '_'], ""), &unique[20..]),
            ..template.clone()
        })
    }

    /// The environment the service (and `verify`) read their settings from.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("INVENTORY_STORE", self.store.clone()),
            ("INVENTORY_DATA_DIR", self.data_dir.display().to_string()),
            ("INVENTORY_TABLE_PREFIX", self.prefix.clone()),
            ("INVENTORY_MIGRATE", "true".into()),
            ("INVENTORY_BUS", self.bus.clone()),
            ("INVENTORY_AMQP_URL", self.amqp_url.clone()),
            ("INVENTORY_BUS_PREFIX", format!("{}.", self.prefix)),
            // The benchmark measures the service, not its per-principal rate limit (every
            // simulated client is the one anonymous principal).
            ("INVENTORY_RATE_LIMIT_PER_SECOND", "0".into()),
        ];
        if let Some(endpoint) = &self.dynamodb_endpoint {
            env.push(("INVENTORY_DYNAMODB_ENDPOINT", endpoint.clone()));
        }
        if self.report_capacity {
            env.push(("INVENTORY_DYNAMODB_REPORT_CAPACITY", "true".into()));
        }
        if let Some(lease) = self.outbox_lease_ms {
            env.push(("INVENTORY_OUTBOX_LEASE_MS", lease.to_string()));
        }
        env
    }

    /// The same settings for the library (seeding in-process).
    pub fn storage_config(&self) -> inventory_service::config::StorageConfig {
        use inventory_service::config::{StorageConfig, StoreKind};
        StorageConfig {
            store: if self.store == "dynamodb" {
                StoreKind::Dynamodb
            } else {
                StoreKind::Sqlite
            },
            data_dir: self.data_dir.clone(),
            dynamodb_endpoint: self.dynamodb_endpoint.clone(),
            table_prefix: self.prefix.clone(),
            migrate: true,
            dynamodb_report_capacity: false,
            outbox_shards: 4,
            snapshot_every: inventory_service::application::commands::DEFAULT_SNAPSHOT_EVERY,
        }
    }
}

/// A running `inventory-service serve`.
pub struct ServiceProcess {
    child: Child,
    pub url: String,
    pub pid: u32,
}

impl ServiceProcess {
    pub async fn start(binary: &Path, instance: &Instance) -> anyhow::Result<Self> {
        let log = std::fs::File::create(instance.data_dir.join("service.log"))?;
        let mut child = Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .envs(instance.env())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id().context("service exited at once")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(120),
            BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .context("the service did not print its address within 120 s")??;
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .with_context(|| {
                format!(
                    "unexpected first line {line:?}; see {}",
                    instance.data_dir.join("service.log").display()
                )
            })?
            .to_owned();
        Ok(Self { child, url, pid })
    }

    /// Resident memory (VmRSS) in MB.
    pub fn rss_mb(&self) -> anyhow::Result<f64> {
        rss_mb(self.pid)
    }

    /// SIGTERM (the service drains its outbox), then a hard kill after 30 s.
    pub async fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.pid.to_string())
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

pub fn rss_mb(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/PID/status")?;
    Ok(kb / 1024.0)
}

/// Runs `inventory-service verify` until the projections equal a replay of the store (they
/// follow commits asynchronously) or they stop catching up: the differences stayed the same for
/// `patience`, or `MAX_VERIFY` passed. The last differences, empty if none. A read model still
/// advancing is behind, not wrong (on the local DynamoDB endpoint a hot item's projections take
/// minutes to digest what 32 clients commit in seconds), so it is given the time it needs.
pub async fn verify(
    binary: &Path,
    instance: &Instance,
    patience: Duration,
) -> anyhow::Result<Vec<String>> {
    const MAX_VERIFY: Duration = Duration::from_secs(600);
    let started = Instant::now();
    let mut changed = started;
    let mut last: Option<Vec<String>> = None;
    loop {
        let output = Command::new(binary)
            .arg("verify")
            .envs(instance.env())
            .env("RUST_LOG", "error")
            .output()
            .await?;
        let report: Value = serde_json::from_slice(&output.stdout).with_context(|| {
            format!(
                "verify printed {:?} {:?}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
        let differences: Vec<String> = report["differences"]
            .as_array()
            .map(|d| d.iter().map(|v| v.to_string()).collect())
            .unwrap_or_default();
        let now = Instant::now();
        if report["consistent"] == Value::Bool(true) {
            if now - started > Duration::from_secs(10) {
                eprintln!(
                    "  verify: the read models caught up {:.0} s after the scenario",
                    (now - started).as_secs_f64()
                );
            }
            return Ok(differences);
        }
        if last.as_ref() != Some(&differences) {
            changed = now;
        }
        if now - changed > patience || now - started > MAX_VERIFY {
            eprintln!(
                "  verify: gave up after {:.0} s, {} differences",
                (now - started).as_secs_f64(),
                differences.len()
            );
            return Ok(differences);
        }
        last = Some(differences);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The release `inventory-service` next to this executable. Run through cargo (`CARGO` set), it
/// is rebuilt first so it is never older than the sources (a no-op when it is up to date).
pub fn service_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("executable has no directory")?;
    if let Some(cargo) = std::env::var_os("CARGO") {
        let mut build = std::process::Command::new(cargo);
        // Every binary, as `cargo build --bins` does: building the one alone would unify
        // the dependencies' features differently and compile much of the tree a second time.
        build.args(["build", "--bins", "--manifest-path"]);
        build.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
        if dir.ends_with("release") {
            build.arg("--release");
        }
        eprintln!("bench: cargo build --bins (as this executable's profile)");
        let status = build.status()?;
        anyhow::ensure!(status.success(), "building inventory-service failed");
    }
    let binary = dir.join("inventory-service");
    anyhow::ensure!(
        binary.exists(),
        "{} is missing: run `cargo build --release` first or pass --service-binary",
        binary.display()
    );
    Ok(binary)
}

/// The DynamoDB endpoint of a run on `--store dynamodb`: `--dynamodb-endpoint`, or else a local
/// one started for the run (kept alive by the returned guard). None on the embedded store.
pub fn dynamodb_endpoint(
    args: &crate::Args,
) -> anyhow::Result<(Option<String>, Option<LocalDynamo>)> {
    if args.store != "dynamodb" {
        return Ok((None, None));
    }
    if let Some(endpoint) = &args.dynamodb_endpoint {
        return Ok((Some(endpoint.clone()), None));
    }
    eprintln!("starting a local DynamoDB endpoint (scripts/dynamodb-local.sh start)");
    let local = LocalDynamo::start()?;
    Ok((Some(local.endpoint.clone()), Some(local)))
}

/// The local DynamoDB endpoint started for this run; stopped when dropped.
pub struct LocalDynamo {
    pub endpoint: String,
    port: String,
}

impl LocalDynamo {
    pub fn start() -> anyhow::Result<Self> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/dynamodb-local.sh");
        let output = std::process::Command::new(&script)
            .arg("start")
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        anyhow::ensure!(output.status.success(), "{} start failed", script.display());
        let endpoint = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let port = endpoint
            .rsplit(':')
            .next()
            .context("endpoint without a port")?
            .to_owned();
        Ok(Self { endpoint, port })
    }
}

impl Drop for LocalDynamo {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/dynamodb-local.sh");
        let _ = std::process::Command::new(script)
            .args(["stop", &self.port])
            .status();
    }
}
