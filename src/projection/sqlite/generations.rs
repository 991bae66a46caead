//! Generations of the embedded projection store: generation 0 is `projections.db`, generation
//! N is `projections-gN.db`, all beside the event store. The layout record is a one-row table
//! in `projections.db`, which therefore always exists.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{sql, SqliteProjections};
use crate::projection::layout::{Layout, ProjectionName};
use crate::projection::switch::{Generations, Projection};
use crate::projection::ProjectionError;
use crate::sqlite_pool::{self, Durability};

const LAYOUT: &str = "
CREATE TABLE IF NOT EXISTS layout (
    id INTEGER PRIMARY KEY CHECK (id = 0), revision INTEGER NOT NULL, body TEXT NOT NULL
);";

pub struct SqliteGenerations {
    dir: PathBuf,
    layout: Arc<Mutex<Connection>>,
}

impl SqliteGenerations {
    pub fn open(data_dir: &Path) -> Result<Self, ProjectionError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| ProjectionError::Unavailable(e.to_string()))?;
        let conn = sqlite_pool::open(&Self::file(data_dir, 0), Durability::Full).map_err(sql)?;
        conn.execute_batch(LAYOUT).map_err(sql)?;
        Ok(Self {
            dir: data_dir.to_path_buf(),
            layout: Arc::new(Mutex::new(conn)),
        })
    }

    /// The file of a generation.
    pub fn file(data_dir: &Path, generation: u32) -> PathBuf {
        match generation {
            0 => data_dir.join("projections.db"),
            n => data_dir.join(format!("projections-g{n}.db")),
        }
    }

    async fn with_layout<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, ProjectionError> + Send + 'static,
    ) -> Result<T, ProjectionError> {
        let conn = self.layout.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn
                .lock()
                .map_err(|_| ProjectionError::Unavailable("layout connection poisoned".into()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| ProjectionError::Unavailable(e.to_string()))?
    }
}

fn read_layout(conn: &Connection) -> Result<Layout, ProjectionError> {
    let row: Option<(i64, String)> = conn
        .query_row("SELECT revision, body FROM layout WHERE id = 0", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(sql)?;
    match row {
        None => Ok(Layout::default()),
        Some((revision, body)) => {
            let mut layout = Layout::decode(&body).map_err(ProjectionError::Unavailable)?;
            layout.revision = revision as u64;
            Ok(layout)
        }
    }
}

#[async_trait]
impl Generations for SqliteGenerations {
    async fn open(
        &self,
        generation: u32,
        projections: &[ProjectionName],
        create: bool,
    ) -> Result<Arc<dyn Projection>, ProjectionError> {
        let file = Self::file(&self.dir, generation);
        if !create && !file.exists() {
            return Err(ProjectionError::Unavailable(format!(
                "projection generation {generation} ({}) is missing",
                file.display()
            )));
        }
        Ok(Arc::new(
            SqliteProjections::open(&file)?.serving(projections),
        ))
    }

    async fn retire(
        &self,
        generation: u32,
        projections: &[ProjectionName],
        whole: bool,
    ) -> Result<(), ProjectionError> {
        let file = Self::file(&self.dir, generation);
        if whole && generation != 0 {
            for suffix in ["", "-wal", "-shm"] {
                let path = PathBuf::from(format!("{}{suffix}", file.display()));
                if let Err(error) = std::fs::remove_file(&path) {
                    if error.kind() != std::io::ErrorKind::NotFound {
                        return Err(ProjectionError::Unavailable(error.to_string()));
                    }
                }
            }
            return Ok(());
        }
        if file.exists() {
            SqliteProjections::open(&file)?.clear(projections).await?;
        }
        Ok(())
    }

    async fn load_layout(&self) -> Result<Layout, ProjectionError> {
        self.with_layout(|conn| read_layout(conn)).await
    }

    async fn save_layout(&self, layout: &Layout) -> Result<bool, ProjectionError> {
        let layout = layout.clone();
        self.with_layout(move |conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(sql)?;
            if read_layout(&tx)?.revision != layout.revision {
                return Ok(false);
            }
            tx.execute(
                "INSERT OR REPLACE INTO layout (id, revision, body) VALUES (0, ?1, ?2)",
                rusqlite::params![(layout.revision + 1) as i64, layout.encode()],
            )
            .map_err(sql)?;
            tx.commit().map_err(sql)?;
            Ok(true)
        })
        .await
    }
}
