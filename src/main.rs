//! The command line: `serve` (the default), `schema` and `verify`. Every flag is also an
//! environment variable; the defaults run the embedded service with no servers to install.

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;

use inventory_service::app::{migrate, rebuild_snapshots, verify_projections, Service};
use inventory_service::config::{BusConfig, StorageConfig};
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
    /// Log format.
    #[arg(long, env = "INVENTORY_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
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
        Some(Command::Serve(args)) => serve(args).await,
        None => serve(cli.serve).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logs(args.log_format);
    if inventory_service::metrics::handle().is_some() {
        inventory_service::metrics::describe();
    }
    let service = Service::start_with(&args.storage, &args.bus)
        .await
        .with_context(|| format!("starting on the {:?} store", args.storage.store))?;
    let schema = graphql::schema(Some(service.context.clone()));
    let router = http::router(schema, service.context.clone());
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
