//! Shared SQLite plumbing for the embedded adapters: opening a file with the pragmas that make
//! it durable and concurrent (WAL, busy timeout), and a small pool of read connections used on
//! tokio's blocking threads so that no query ever blocks the async runtime.

use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// How hard SQLite syncs. `Full` fsyncs the WAL on every commit, so an acknowledged commit
/// survives power loss (the store, and the projections: the outbox row goes once they are
/// written); `Normal` may lose the last commits on power loss (never corrupts), which is
/// fine for connections that only read.
#[derive(Debug, Clone, Copy)]
pub enum Durability {
    Full,
    Normal,
}

pub fn open(path: &Path, durability: Durability) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    Ok(conn)
}

/// Read connections, created on demand and reused. WAL lets them read while one writer writes.
#[derive(Clone)]
pub struct ReadPool {
    path: PathBuf,
    idle: Arc<Mutex<Vec<Connection>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("blocking task failed: {0}")]
    Join(String),
}

impl ReadPool {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Runs `f` with a read connection on a blocking thread.
    pub async fn read<T, F>(&self, f: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match pool.idle.lock().map(|mut idle| idle.pop()) {
                Ok(Some(conn)) => conn,
                _ => open(&pool.path, Durability::Normal)?,
            };
            let result = f(&conn);
            if let Ok(mut idle) = pool.idle.lock() {
                if idle.len() < 16 {
                    idle.push(conn);
                }
            }
            result.map_err(PoolError::from)
        })
        .await
        .map_err(|e| PoolError::Join(e.to_string()))?
    }
}
