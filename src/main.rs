//! The command line: `serve` (the default), `schema`, `verify`, `migrate`, `replay` and
//! `rebuild-snapshots`. Every flag is also an
//! environment variable; the defaults run the embedded service with no servers to install.

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::str::FromStr;

use inventory_service::app::{migrate, rebuild_snapshots, verify_projections, Service};
use inventory_service::config::{BusConfig, EdgeConfig, StorageConfig};
use inventory_service::projection::layout::ProjectionName;
use inventory_service::{graphql, http};

#[derive(Parser)]
#[command(
    name = "inventory-service",
    version,
    about = "Event-sourced inventory service with a GraphQL API"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(clap::Args, Clone)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "INVENTORY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    storage: StorageConfig,
    #[command(flatten)]
    bus: BusConfig,
    #[command(flatten)]
    edge: EdgeConfig,
    /// Log format.
    #[arg(long, env = "INVENTORY_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// How long a DataLoader batch (links between entities, `node`) waits for more ids after
    /// its first: longer gathers a slowly resolved page into fewer reads, shorter adds less
    /// latency to each level of links.
    #[arg(
        long,
        env = "INVENTORY_BATCH_WINDOW_MS",
        default_value_t = graphql::loaders::BATCH_WINDOW.as_millis() as u64,
        value_parser = clap::value_parser!(u64).range(0..=100)
    )]
    batch_window_ms: u64,
}

#[derive(ValueEnum, Clone, Copy)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve(ServeArgs),
    /// Print the GraphQL schema (SDL) the service serves.
    Schema,
    /// Rebuild every projection from the store in a scratch file and compare with the live ones.
    Verify(StorageConfig),
    /// Create the store's tables and indexes (DynamoDB); safe to run again.
    Migrate(StorageConfig),
    /// Rewrite every aggregate's snapshot from its events.
    RebuildSnapshots(StorageConfig),
    /// Rebuild projections from the store into fresh tables and switch readers over once
    /// caught up; the API keeps serving the old tables meanwhile. Run it again (with no
    /// projection named) to resume an interrupted rebuild.
    Replay(ReplayArgs),
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// A projection to rebuild (repeatable): warehouses, current_inventory,
    /// allocation_status, inventory_history, stock_movements.
    #[arg(long = "projection", value_parser = ProjectionName::from_str)]
    projections: Vec<ProjectionName>,
    /// Rebuild every projection.
    #[arg(long, conflicts_with = "projections")]
    all: bool,
    /// Stop the rebuild in progress and drop its tables.
    #[arg(long, conflicts_with_all = ["projections", "all"])]
    abandon: bool,
    /// Events read from the store per page (progress is saved after each).
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    page_size: u32,
    /// Pause between pages, to leave room for live traffic.
    #[arg(long, default_value_t = 0)]
    throttle_ms: u64,
    #[command(flatten)]
    storage: StorageConfig,
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Schema) => {
            print!("{}", graphql::sdl());
            Ok(())
        }
        Some(Command::Migrate(storage)) => {
            init_logs(LogFormat::Text);
            let created = migrate(&storage).await?;
            println!("{}", serde_json::json!({ "created": created }));
            Ok(())
        }
        Some(Command::RebuildSnapshots(storage)) => {
            init_logs(LogFormat::Text);
            let written = rebuild_snapshots(&storage).await?;
            println!("{}", serde_json::json!({ "snapshots": written }));
            Ok(())
        }
        Some(Command::Verify(storage)) => {
            init_logs(LogFormat::Text);
            let differences = verify_projections(&storage).await?;
            println!(
                "{}",
                serde_json::json!({ "consistent": differences.is_empty(), "differences": differences })
            );
            if differences.is_empty() {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
        Some(Command::Replay(args)) => {
            init_logs(LogFormat::Text);
            replay_command(args).await
        }
        Some(Command::Serve(args)) => serve(args).await,
        None => serve(cli.serve).await,
    }
}

/// `replay`: rebuilds (or resumes, or abandons) with progress on stderr and a JSON summary on
/// stdout.
async fn replay_command(args: ReplayArgs) -> anyhow::Result<()> {
    use inventory_service::app::Storage;
    use inventory_service::projection::replay::{abandon, replay, ReplayOptions};
    let Storage { store, projections } = Storage::open(&args.storage).await?;
    if args.abandon {
        let abandoned = abandon(&projections).await?;
        println!(
            "{}",
            serde_json::json!({ "abandoned": abandoned.map(|r| r.generation) })
        );
        return Ok(());
    }
    let options = ReplayOptions {
        projections: if args.all {
            ProjectionName::ALL.to_vec()
        } else {
            args.projections
        },
        page_size: args.page_size as usize,
        throttle: std::time::Duration::from_millis(args.throttle_ms),
    };
    let started = std::time::Instant::now();
    let rebuild = replay(store, &projections, options, |rebuild| {
        let total = rebuild
            .events_total
            .filter(|total| *total >= rebuild.events_done)
            .map_or_else(|| "?".to_owned(), |t| t.to_string());
        let left = rebuild
            .seconds_left()
            .map_or_else(|| "unknown".to_owned(), |s| format!("{s:.0} s"));
        eprintln!(
            "replay generation {} ({:?}): {} of {total} events, {:.0} events/s, time left {left}",
            rebuild.generation,
            rebuild.phase,
            rebuild.events_done,
            rebuild.rate(),
        );
    })
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "generation": rebuild.generation,
            "projections": rebuild.projections,
            "events": rebuild.events_done,
            "resumedAtEvents": rebuild.resumed_at_events,
            "seconds": seconds,
            "eventsPerSecond": rebuild.rate(),
        })
    );
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logs(args.log_format);
    if inventory_service::metrics::handle().is_some() {
        inventory_service::metrics::describe();
    }
    let service = Service::start_with(&args.storage, &args.bus)
        .await
        .with_context(|| format!("starting on the {:?} store", args.storage.store))?;
    let schema = graphql::schema_with(
        Some(service.context.clone()),
        std::time::Duration::from_millis(args.batch_window_ms),
    );
    let edge = http::Edge::from_config(&args.edge)?;
    let router = http::router(schema, service.context.clone(), edge);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let address = listener.local_addr()?;
    // The first stdout line is the address, for scripts and the test harness.
    println!("listening on http://{address}");
    tracing::info!(%address, store = ?args.storage.store, "inventory service ready; GraphiQL at /graphql");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("no more requests; publishing what remains in the outbox");
    service.stop().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
