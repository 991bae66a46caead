//! The command line, and only that: parses `serve` (the default), `schema`, `verify`,
//! `migrate`, `replay`, `rebuild-snapshots`, `export`, `import` and `api-key`, sets up logging and hands each to
//! `app`. Every flag is also an environment variable; the defaults run the embedded service
//! with no servers.

use clap::{Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::str::FromStr;

use inventory_service::app::{self, migrate, rebuild_snapshots, verify_projections};
use inventory_service::auth::{keys, Role};
use inventory_service::config::{AuthConfig, BusConfig, EdgeConfig, ExpiryConfig, StorageConfig};
use inventory_service::graphql;
use inventory_service::projection::layout::ProjectionName;

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
    #[command(flatten)]
    expiry: ExpiryConfig,
    #[command(flatten)]
    auth: AuthConfig,
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
    Serve(Box<ServeArgs>),
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
    /// Write every stored event as JSON Lines (a consistent cut, taken while the service
    /// serves), between a header and a trailer with a SHA-256; gzip when FILE ends in .gz.
    Export(ExportArgs),
    /// Check a backup whole, then write it into an empty store, rebuild every projection and
    /// snapshot, and verify. Interrupted, run it again: it resumes and finishes.
    Import(ImportArgs),
    /// Create, list and revoke API keys. They live in the store's database, so every instance
    /// on the same store knows them; a revocation holds everywhere within a second.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create a key: prints it as JSON, then its secret alone on the last line. The secret is
    /// shown only this once (the store keeps its SHA-256); clients send it as
    /// `Authorization: Bearer <secret>`.
    Create(CreateKeyArgs),
    /// Print every key, revoked ones too, one JSON object a line (never a secret or its hash).
    List(StorageConfig),
    /// Revoke a key (it keeps its name); exits with 1 when there is no key of that name.
    Revoke(RevokeKeyArgs),
}

#[derive(clap::Args)]
struct CreateKeyArgs {
    /// The key's name, the actor of every event it causes: 1 to 64 of A-Z a-z 0-9 . _ : @ -.
    #[arg(long, value_parser = key_name)]
    name: String,
    /// What the key may do (each role includes the ones before it).
    #[arg(long, value_enum)]
    role: Role,
    /// A warehouse the key is limited to, by id (repeatable); none: every warehouse.
    #[arg(long = "warehouse", value_name = "ID")]
    warehouses: Vec<uuid::Uuid>,
    /// The key may name another actor in `X-Actor` (a trusted gateway acting for its users).
    #[arg(long)]
    acts_for_others: bool,
    #[command(flatten)]
    storage: StorageConfig,
}

#[derive(clap::Args)]
struct RevokeKeyArgs {
    /// The key's name.
    #[arg(long)]
    name: String,
    #[command(flatten)]
    storage: StorageConfig,
}

/// A key name, checked as the store will check it, so a bad one is refused with the rule.
fn key_name(text: &str) -> Result<String, String> {
    keys::check_name(text)
        .map(|()| text.to_owned())
        .map_err(|e| e.to_string())
}

#[derive(clap::Args)]
struct ExportArgs {
    /// The file to write (`-`: standard output; gzip when the name ends in .gz).
    #[arg(long, value_name = "FILE")]
    out: String,
    /// Include the API keys (their hashes) and the idempotency records.
    #[arg(long)]
    include_keys: bool,
    #[command(flatten)]
    storage: StorageConfig,
}

#[derive(clap::Args)]
struct ImportArgs {
    /// The backup to import (gzip when the name ends in .gz).
    #[arg(long = "in", value_name = "FILE")]
    input: String,
    #[command(flatten)]
    storage: StorageConfig,
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
        Some(Command::Export(args)) => {
            init_logs(LogFormat::Text);
            let exported = app::export(&args.storage, &args.out, args.include_keys).await?;
            // The summary goes to stderr when the backup itself is on stdout.
            let summary = serde_json::to_string(&exported)?;
            if args.out == "-" {
                eprintln!("{summary}");
            } else {
                println!("{summary}");
            }
            Ok(())
        }
        Some(Command::Import(args)) => {
            init_logs(LogFormat::Text);
            println!("{}", app::import(&args.storage, &args.input).await?);
            Ok(())
        }
        Some(Command::ApiKey { command }) => {
            init_logs(LogFormat::Text);
            api_key_command(command).await
        }
        Some(Command::Serve(args)) => serve(*args).await,
        None => serve(cli.serve).await,
    }
}

/// `replay`: rebuilds (or resumes, or abandons) with progress on stderr and a JSON summary on
/// stdout.
async fn replay_command(args: ReplayArgs) -> anyhow::Result<()> {
    let request = app::ReplayRequest {
        projections: if args.all {
            ProjectionName::ALL.to_vec()
        } else {
            args.projections
        },
        abandon: args.abandon,
        page_size: args.page_size as usize,
        throttle: std::time::Duration::from_millis(args.throttle_ms),
    };
    let summary = app::replay(&args.storage, request).await?;
    println!("{summary}");
    Ok(())
}

/// `api-key`: JSON lines on stdout (a created key's secret alone on the last line), notes on
/// stderr.
async fn api_key_command(command: ApiKeyCommand) -> anyhow::Result<()> {
    match command {
        ApiKeyCommand::Create(args) => {
            let new = app::NewKey {
                name: args.name,
                role: args.role,
                warehouses: args.warehouses,
                acts_for_others: args.acts_for_others,
            };
            let (key, secret) = app::create_key(&args.storage, new).await?;
            eprintln!(
                "created API key {:?}; its secret is the last line below, shown only now",
                key.name
            );
            println!("{}", app::key_listing(&key));
            println!("{secret}");
        }
        ApiKeyCommand::List(storage) => {
            for key in app::list_keys(&storage).await? {
                println!("{}", app::key_listing(&key));
            }
        }
        ApiKeyCommand::Revoke(args) => match app::revoke_key(&args.storage, &args.name).await? {
            app::Revocation::Revoked(key) => println!("{}", app::key_listing(&key)),
            app::Revocation::AlreadyRevoked(key) => {
                eprintln!("API key {:?} was revoked already", key.name);
                println!("{}", app::key_listing(&key));
            }
            app::Revocation::NoSuchKey => {
                anyhow::bail!("there is no API key named {:?}", args.name)
            }
        },
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logs(args.log_format);
    app::serve(app::ServeSettings {
        listen: args.listen,
        storage: args.storage,
        bus: args.bus,
        edge: args.edge,
        expiry: args.expiry,
        auth: args.auth,
        batch_window: std::time::Duration::from_millis(args.batch_window_ms),
    })
    .await
}
