//! `bench service`: starts what the run needs (the service binary, a local DynamoDB endpoint
//! unless one is given, the framework-floor server), runs every scenario and baseline `--repeat`
//! times on fresh data, checks correctness after each scenario, and reports medians.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

use crate::baselines;
use crate::client::Gql;
use crate::cost;
use crate::lag;
use crate::library::tempfile_dir;
use crate::report;
use crate::scenarios::{self, Fixture, Timing};
use crate::seeding;
use crate::server::{self, Instance, ServiceProcess};
use crate::stats::{self, Row};
use crate::Args;

/// Everything a run shares.
struct Bench<'a> {
    args: &'a Args,
    binary: std::path::PathBuf,
    root: std::path::PathBuf,
    template: Instance,
    http: reqwest::Client,
    timing: Timing,
}

pub async fn run(args: &Args) -> anyhow::Result<bool> {
    let binary = server::service_binary(args.service_binary.as_deref())?;
    let (endpoint, local) = server::dynamodb_endpoint(args)?;
    let root = tempfile_dir()?;
    let bench = Bench {
        args,
        binary,
        template: Instance {
            data_dir: root.clone(),
            prefix: String::new(),
            store: args.store.clone(),
            dynamodb_endpoint: endpoint.clone(),
            bus: args.bus.clone(),
            amqp_url: args.amqp_url.clone(),
            report_capacity: false,
            outbox_lease_ms: None,
        },
        root: root.clone(),
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()?,
        timing: if args.quick {
            Timing {
                warmup: Duration::from_millis(500),
                measure: Duration::from_secs(2),
            }
        } else {
            Timing {
                warmup: Duration::from_secs(2),
                measure: Duration::from_secs(10),
            }
        },
    };
    let result = bench.run_all(endpoint.as_deref()).await;
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&root);
    } else {
        eprintln!("data and service logs kept in {}", root.display());
    }
    drop(local);
    result
}

impl Bench<'_> {
    async fn run_all(&self, endpoint: Option<&str>) -> anyhow::Result<bool> {
        let started = std::time::Instant::now();
        let floor = Gql::new(self.http.clone(), &baselines::start_floor().await?);
        let cost = if self.args.store == "dynamodb" {
            Some(self.cost(endpoint).await.context("the cost section")?)
        } else {
            None
        };
        // Scenario 6's long streams are seeded once and served by one process for all repeats.
        let default_sizes: &[u64] = if self.args.quick {
            &[10, 1_000]
        } else {
            &[10, 1_000, 100_000]
        };
        let sizes = self.args.sizes_or(default_sizes);
        let history = Instance::new(&self.root, "history", &self.template)?;
        eprintln!("scenario 6: seeding streams of {sizes:?} events");
        let streams = seeding::seed_items(&history, &sizes, 4).await?;
        let history_service = ServiceProcess::start(&self.binary, &history).await?;
        let history_gql = Gql::new(self.http.clone(), &history_service.url);

        let mut runs = Vec::new();
        for repeat in 0..self.args.repeat {
            eprintln!("run {} of {}", repeat + 1, self.args.repeat);
            let mut rows = self.one_run(repeat, &floor, endpoint).await?;
            // Scenario 6 on the seeded streams.
            let mut latest = None;
            for (size, item) in sizes.iter().zip(&streams) {
                eprintln!("  6. command latency, {size} prior events");
                let mut row =
                    scenarios::command_latency(&history_gql, &item.to_string(), self.commands())
                        .await?;
                row.key = format!("s6_prior_{size}");
                row.label = format!("6. inventoryAdjust after {size} prior events");
                rows.push(row);
                latest = Some(rows.len() - 1);
            }
            if let Some(index) = latest {
                rows[index].check = Some(self.check(&history, &history_gql).await);
            }
            runs.push(rows);
        }
        history_service.stop().await;
        let mut medians = stats::medians(&runs);
        if self.args.skip_rss || self.args.store != "sqlite" {
            eprintln!("scenario 8 skipped (--skip-rss, or not the embedded store)");
        } else {
            medians.push(self.memory().await?);
        }
        let report = report::Report::new(self.args, &runs, medians, cost, started.elapsed());
        report.print();
        let path = self.args.json_or("target/bench-service.json");
        if let Some(parent) = Path::new(path).parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&report.json())?)?;
        eprintln!("figures written to {path}");
        Ok(report.checks_passed())
    }

    /// What a command costs on DynamoDB: a service of its own started with the capacity flag,
    /// `--commands` sequential commands per kind (50 by default, `--quick` too), then the raw
    /// baseline in-process, while nothing else in this process calls DynamoDB.
    async fn cost(&self, endpoint: Option<&str>) -> anyhow::Result<cost::CostReport> {
        eprintln!("cost: requests and capacity units per command");
        // An hour's outbox leases: their renewals (a PutItem per shard every third of the
        // lease, a cost per instance and second, not per command) then fall outside the
        // measured windows instead of jittering their figures.
        let instance = Instance {
            report_capacity: true,
            outbox_lease_ms: Some(cost::LEASE_MS),
            ..Instance::new(&self.root, "cost", &self.template)?
        };
        let service = ServiceProcess::start(&self.binary, &instance).await?;
        let gql = Gql::new(self.http.clone(), &service.url);
        let scraper = cost::Scraper::new(self.http.clone(), &service.url, &instance.prefix);
        let measured = cost::measure(&gql, &scraper, self.args.commands).await;
        service.stop().await;
        let mut report = measured?;
        report.baseline =
            Some(baselines::raw_dynamodb_cost(endpoint, self.args.commands as u64).await?);
        Ok(report)
    }

    fn commands(&self) -> usize {
        if self.args.quick {
            self.args.commands.min(20)
        } else {
            self.args.commands
        }
    }

    /// Scenarios 1–5 and 7 on a fresh service, and the baselines of the same repeat.
    async fn one_run(
        &self,
        repeat: usize,
        floor: &Gql,
        endpoint: Option<&str>,
    ) -> anyhow::Result<Vec<Row>> {
        let instance = Instance::new(&self.root, &format!("run{repeat}"), &self.template)?;
        let service = ServiceProcess::start(&self.binary, &instance).await?;
        let gql = Gql::new(self.http.clone(), &service.url);
        let fixture = Fixture::create(&gql).await?;
        let timing = self.timing;
        let mut rows = Vec::new();

        eprintln!("  1. sequential inventoryAdjust");
        let tally =
            scenarios::adjust_load(&gql, std::slice::from_ref(&fixture.sequential), 1, timing)
                .await;
        let mut row = scenarios::tally_row(
            "s1_sequential_adjust",
            "1. inventoryAdjust, 1 client, 1 item",
            &tally,
        );
        row.check = Some(self.check(&instance, &gql).await);
        let sequential = (row.get("ops").unwrap_or(1_000.0).max(100.0)) as u64;
        rows.push(row);
        // Each baseline runs right after the scenario it is compared with (and after the
        // check, so the service's projectors are idle): a shared machine's load drifts
        // within a run, and the ratio should see the same load on both sides.
        eprintln!("  baselines for 1: raw appends, framework floor");
        rows.push(baselines::raw_sqlite(&instance.data_dir, sequential.min(20_000)).await?);
        if self.args.store == "dynamodb" {
            rows.push(
                baselines::raw_dynamodb(
                    endpoint,
                    sequential,
                    1,
                    "raw_dynamodb_sequential",
                    "raw DynamoDB append, sequential",
                )
                .await?,
            );
        }
        rows.push(baselines::floor(floor, 1, timing.warmup, timing.measure).await);

        // Beside scenario 1: the same single client, a hundred rows a request.
        eprintln!("  9. inventoryBulkAdjust of {} rows", scenarios::BULK_ROWS);
        let tally = scenarios::bulk_load(&gql, &fixture.bulk, timing).await;
        let mut row = scenarios::tally_row(
            "s9_bulk_adjust",
            "9. inventoryBulkAdjust, 100 rows, 1 client",
            &tally,
        );
        row.set(
            "rowsPerSec",
            tally.ops_per_sec() * scenarios::BULK_ROWS as f64,
        );
        row.check = Some(self.check(&instance, &gql).await);
        rows.push(row);

        eprintln!("  2. 16 clients over 16 items");
        let tally = scenarios::adjust_load(&gql, &fixture.spread, 16, timing).await;
        let mut row = scenarios::tally_row(
            "s2_concurrent_adjust",
            "2. inventoryAdjust, 16 clients, 16 items",
            &tally,
        );
        row.check = Some(self.check(&instance, &gql).await);
        let peak = tally.ops_per_sec();
        let concurrent = (row.get("ops").unwrap_or(1_000.0).max(160.0)) as u64;
        rows.push(row);
        eprintln!("  baselines for 2: raw appends, framework floor");
        if self.args.store == "dynamodb" {
            rows.push(
                baselines::raw_dynamodb(
                    endpoint,
                    concurrent,
                    16,
                    "raw_dynamodb_16",
                    "raw DynamoDB append, 16 concurrent",
                )
                .await?,
            );
        }
        rows.push(baselines::floor(floor, 16, timing.warmup, timing.measure).await);

        eprintln!("  3. 32 clients on one hot item");
        let tally =
            scenarios::adjust_load(&gql, std::slice::from_ref(&fixture.hot), 32, timing).await;
        let mut row = scenarios::tally_row(
            "s3_hot_item",
            "3. inventoryAdjust, 32 clients, 1 hot item",
            &tally,
        );
        row.check = Some(self.check(&instance, &gql).await);
        rows.push(row);
        rows.push(baselines::floor(floor, 32, timing.warmup, timing.measure).await);

        eprintln!("  4. allocationCreate, 32 clients over 8 items");
        let tally = scenarios::allocate_load(&gql, &fixture.allocatable, 32, timing).await;
        let mut row = scenarios::tally_row(
            "s4_allocate",
            "4. allocationCreate, 32 clients, 8 items",
            &tally,
        );
        row.check = Some(self.check(&instance, &gql).await);
        rows.push(row);

        eprintln!("  5. subscriber lag at half of {peak:.0} ops/s");
        let mut lag_rows = lag::subscriber_lag(
            &gql,
            &service.url,
            &fixture.warehouse,
            &fixture.crossing,
            peak / 2.0,
            timing.measure,
        )
        .await?;
        if let Some(last) = lag_rows.last_mut() {
            last.check = Some(self.check(&instance, &gql).await);
        }
        rows.extend(lag_rows);

        eprintln!("  7. dashboard query under 8 writers");
        let (read, written) =
            scenarios::dashboard_under_writes(&gql, &fixture.writers, timing).await;
        let mut row = scenarios::tally_row(
            "s7_dashboard",
            "7. inventoryItems(first: 100) under 8 writers",
            &read,
        );
        row.set("writerOpsPerSec", written.ops_per_sec());
        row.check = Some(self.check(&instance, &gql).await);
        rows.push(row);
        service.stop().await;

        Ok(rows)
    }

    /// The projections equal a replay of the store (`inventory-service verify`, polled until the
    /// projections settle), and nothing is oversold.
    async fn check(&self, instance: &Instance, gql: &Gql) -> Result<(), String> {
        let differences = server::verify(&self.binary, instance, Duration::from_secs(60))
            .await
            .map_err(|e| format!("verify failed to run: {e:#}"))?;
        if let Some(first) = differences.first() {
            return Err(format!(
                "verify: {} differences, e.g. {first}",
                differences.len()
            ));
        }
        let problems = scenarios::check_no_oversell(gql)
            .await
            .map_err(|e| format!("oversell check failed to run: {e:#}"))?;
        match problems.first() {
            None => Ok(()),
            Some(first) => Err(format!("{} oversold items, e.g. {first}", problems.len())),
        }
    }

    /// Scenario 8: resident memory of a service holding 100,000 items and 1,000,000 events on
    /// the embedded store (`--quick`: 2,000 items, 20,000 events), after some queries.
    async fn memory(&self) -> anyhow::Result<Row> {
        let items = if self.args.quick { 2_000 } else { 100_000 };
        let instance = Instance::new(&self.root, "memory", &self.template)?;
        eprintln!("scenario 8: seeding {items} items with 10 events each");
        let ids = seeding::seed_items(&instance, &vec![10; items], 64).await?;
        let service = ServiceProcess::start(&self.binary, &instance).await?;
        let gql = Gql::new(self.http.clone(), &service.url);
        let idle = service.rss_mb()?;
        // A dashboard paging through everything, item lookups and some commands.
        let mut after: Option<String> = None;
        for _ in 0..200 {
            let data = gql
                .data(
                    "query($a: String) { inventoryItems(first: 500, after: $a) {
                        edges { node { id onHand available } } pageInfo { hasNextPage endCursor } } }",
                    serde_json::json!({ "a": after }),
                )
                .await?;
            after = data["inventoryItems"]["pageInfo"]["endCursor"]
                .as_str()
                .map(str::to_owned);
            if data["inventoryItems"]["pageInfo"]["hasNextPage"] != serde_json::json!(true) {
                break;
            }
        }
        let step = (ids.len() / 1_000).max(1);
        for id in ids.iter().step_by(step) {
            gql.data(
                "query($i: ID!) { inventoryItem(id: $i) { id onHand version } }",
                serde_json::json!({ "i": id.to_string() }),
            )
            .await?;
        }
        for id in ids.iter().step_by(step * 10) {
            gql.data(
                scenarios::ADJUST,
                serde_json::json!({ "i": id.to_string(), "d": 1 }),
            )
            .await?;
        }
        let rss = service.rss_mb()?;
        let mut row = Row::new(
            "s8_memory",
            &format!("8. service RSS, {items} items / {} events", items * 10),
        );
        row.set("rssMb", rss)
            .set("rssIdleMb", idle)
            .set("items", items as f64)
            .set("events", (items * 10) as f64);
        row.check = Some(self.check(&instance, &gql).await);
        service.stop().await;
        Ok(row)
    }
}
