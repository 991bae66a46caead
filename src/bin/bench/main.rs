//! The project's benchmark.
//!
//! - `service`: the release `inventory-service` binary driven the way clients drive it (GraphQL
//!   over HTTP, subscriptions over WebSocket), scenario by scenario, next to baselines measured
//!   in the same run (raw DynamoDB appends, a do-nothing async-graphql server, raw SQLite
//!   inserts); after each scenario the projections are verified against a replay of the store.
//!   On DynamoDB it first measures what each command costs: requests and capacity units per
//!   command, by table and index, beside one raw append (see `cost/`).
//! - `latency` and `rebuild`: the same measurements through the library (see `library.rs`).
//! - `catch-up`: a start-up catching the projections up with a large store (`catch_up.rs`).
//! - `archive-file`: writes a synthetic backup of `--events` events over `--items` items to
//!   `--out`, for measuring `export` and `import` at scale (`scripts/archive-bench.sh`).
//!
//! `cargo run --release --bin bench -- service [--store dynamodb] [--repeat 3] [--quick]`

mod baselines;
mod catch_up;
mod client;
mod cost;
mod lag;
mod library;
mod report;
mod scenarios;
mod seeding;
mod server;
mod service;
mod stats;

use clap::Parser;

#[derive(Parser)]
pub struct Args {
    /// Which benchmark.
    #[arg(value_parser = ["service", "latency", "rebuild", "catch-up", "archive-file"], default_value = "latency")]
    which: String,
    #[arg(long, default_value = "sqlite", value_parser = ["sqlite", "dynamodb"])]
    store: String,
    /// A DynamoDB endpoint; without it, `service --store dynamodb` starts a local one
    /// (`scripts/dynamodb-local.sh start`) and stops it at the end.
    #[arg(long)]
    dynamodb_endpoint: Option<String>,
    /// Prior-event counts to measure (`latency`, and scenario 6 of `service`).
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<u64>>,
    /// Measured commands per case (after warm-up).
    #[arg(long, default_value_t = 50)]
    commands: usize,
    /// Where to write the JSON figures (default `target/bench-<which>.json`).
    #[arg(long)]
    json: Option<String>,
    /// `rebuild`, `catch-up`: events in the store (spread over `--items` items).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// `archive-file`: the backup to write (gzip when it ends in .gz).
    #[arg(long, default_value = "target/synthetic-backup.jsonl")]
    out: String,
    /// `rebuild`, `archive-file`: items the events are spread over.
    #[arg(long, default_value_t = 1_000)]
    items: u64,
    /// `service`: how events travel inside the service.
    #[arg(long, default_value = "local", value_parser = ["local", "rabbitmq"])]
    bus: String,
    /// `service`: RabbitMQ URL for `--bus rabbitmq`.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp_url: String,
    /// `service`: run the whole set this many times and report medians.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// `service`: a short smoke run (short scenarios, small seeded stores).
    #[arg(long)]
    quick: bool,
    /// `service`: skip scenario 8 (memory with 100,000 items and 1,000,000 events).
    #[arg(long)]
    skip_rss: bool,
    /// `service`: the `inventory-service` binary (default: the one next to this executable,
    /// rebuilt first with `cargo build --release` when run through cargo).
    #[arg(long)]
    service_binary: Option<std::path::PathBuf>,
}

impl Args {
    pub fn json_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.json.as_deref().unwrap_or(default)
    }

    /// The prior-event counts, defaulting to 10, 1,000 and 100,000.
    pub fn sizes_or(&self, default: &[u64]) -> Vec<u64> {
        self.sizes.clone().unwrap_or_else(|| default.to_vec())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.which.as_str() {
        "rebuild" => library::rebuild(&args).await,
        "catch-up" => catch_up::run(&args).await,
        "archive-file" => {
            let started = std::time::Instant::now();
            let written =
                inventory_service::archive::synthetic::write(&args.out, args.events, args.items)?;
            eprintln!(
                "wrote {} events of {} aggregates to {} in {:.1} s",
                written.events,
                written.aggregates,
                args.out,
                started.elapsed().as_secs_f64()
            );
            println!("{}", serde_json::to_string(&written)?);
            Ok(())
        }
        "service" => {
            let passed = service::run(&args).await?;
            if !passed {
                eprintln!("a correctness check failed");
                std::process::exit(1);
            }
            Ok(())
        }
        _ => library::latency(&args).await,
    }
}
