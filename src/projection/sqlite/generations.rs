//! Generations of the embedded projection store, beside the event store: generation 0 of every
//! projection is `projections.db` (which also holds the layout record, so it always exists);
//! generation N of a projection is its own file, `projections-gN-<projection>.db`, deleted
//! whole when it retires. Files of an older release, `projections-gN.db` with every projection
//! a rebuild made, keep serving the projections the layout still routes there.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{sql, SqliteProjections};
use crate::projection::fanout::Fanout;
use crate::projection::layout::{Layout, ProjectionName};
use crate::projection::lease::Heartbeat;
use crate::projection::switch::{Generations, Projection};
use crate::projection::{ProjectionError, ProjectionStore};
use crate::sqlite_pool::{self, Durability};

const LAYOUT: &str = "
CREATE TABLE IF NOT EXISTS layout (
    id INTEGER PRIMARY KEY CHECK (id = 0), revision INTEGER NOT NULL, body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS heartbeats (
    process TEXT PRIMARY KEY, label TEXT NOT NULL, revision INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);";

pub struct SqliteGenerations {
    dir: PathBuf,
    layout: Arc<Mutex<Connection>>,
    /// Each file opened once: the projections sharing a file share its writer, so their
    /// batches queue in this process instead of contending for the file's lock.
    files: Mutex<HashMap<PathBuf, SqliteProjections>>,
}

impl SqliteGenerations {
    pub fn open(data_dir: &Path) -> Result<Self, ProjectionError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| ProjectionError::request("creating the data directory", e))?;
        let conn = sqlite_pool::open(&Self::file(data_dir, 0), Durability::Full).map_err(sql)?;
        conn.execute_batch(LAYOUT).map_err(sql)?;
        Ok(Self {
            dir: data_dir.to_path_buf(),
            layout: Arc::new(Mutex::new(conn)),
            files: Mutex::default(),
        })
    }

    /// The file of generation 0, and of a generation made by an older release, holding several
    /// projections.
    pub fn file(data_dir: &Path, generation: u32) -> PathBuf {
        match generation {
            0 => data_dir.join("projections.db"),
            n => data_dir.join(format!("projections-g{n}.db")),
        }
    }

    /// The file holding `projection` in `generation`: its own, unless an older release put it
    /// in a shared one that is still there.
    pub fn file_of(data_dir: &Path, projection: ProjectionName, generation: u32) -> PathBuf {
        let shared = Self::file(data_dir, generation);
        if generation == 0 {
            return shared;
        }
        let own = data_dir.join(format!("projections-g{generation}-{projection}.db"));
        if !own.exists() && shared.exists() {
            return shared;
        }
        own
    }

    /// The store on `file`, opened once.
    fn store(&self, file: &Path) -> Result<SqliteProjections, ProjectionError> {
        let mut files = self
            .files
            .lock()
            .map_err(|_| ProjectionError::Unavailable("projection files poisoned".into()))?;
        if let Some(store) = files.get(file) {
            return Ok(store.clone());
        }
        let store = SqliteProjections::open(file)?;
        files.insert(file.to_path_buf(), store.clone());
        Ok(store)
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
        .map_err(|e| ProjectionError::request("reading or writing the projection layout", e))?
    }
}

fn missing(projection: ProjectionName, generation: u32, file: &Path) -> ProjectionError {
    ProjectionError::Unavailable(format!(
        "generation {generation} of the {projection} projection ({}) is missing",
        file.display()
    ))
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
            let mut layout = Layout::decode(&body)
                .map_err(|e| ProjectionError::request("decoding the projection layout", e))?;
            layout.revision = revision as u64;
            Ok(layout)
        }
    }
}

#[async_trait]
impl Generations for SqliteGenerations {
    async fn open(
        &self,
        projection: ProjectionName,
        generation: u32,
        create: bool,
    ) -> Result<Arc<dyn Projection>, ProjectionError> {
        let file = Self::file_of(&self.dir, projection, generation);
        if !create && !file.exists() {
            return Err(missing(projection, generation, &file));
        }
        Ok(Arc::new(self.store(&file)?.serving(&[projection])))
    }

    async fn retire(
        &self,
        projection: ProjectionName,
        generation: u32,
    ) -> Result<(), ProjectionError> {
        let file = Self::file_of(&self.dir, projection, generation);
        if !file.exists() {
            return Ok(());
        }
        let shared = file == Self::file(&self.dir, generation);
        if shared {
            // Other projections may still be served from this file: only this one's rows go,
            // and an older release's file goes once no projection has rows in it.
            let store = self.store(&file)?;
            let empty = store.clear(projection).await?;
            if !(empty && generation != 0) {
                return Ok(());
            }
        }
        if let Ok(mut files) = self.files.lock() {
            files.remove(&file);
        }
        for suffix in ["", "-wal", "-shm"] {
            let path = PathBuf::from(format!("{}{suffix}", file.display()));
            if let Err(error) = std::fs::remove_file(&path) {
                if error.kind() != std::io::ErrorKind::NotFound {
                    return Err(ProjectionError::request(
                        "deleting a retired projection file",
                        error,
                    ));
                }
            }
        }
        Ok(())
    }

    /// One store per file, applying the projections that file holds in one transaction (a
    /// deployment that never rebuilt applies every batch in one).
    async fn target(
        &self,
        parts: &[(ProjectionName, u32)],
    ) -> Result<Arc<dyn ProjectionStore>, ProjectionError> {
        let mut by_file: BTreeMap<PathBuf, Vec<ProjectionName>> = BTreeMap::new();
        for (projection, generation) in parts {
            let file = Self::file_of(&self.dir, *projection, *generation);
            if !file.exists() {
                return Err(missing(*projection, *generation, &file));
            }
            by_file.entry(file).or_default().push(*projection);
        }
        let mut stores: Vec<Arc<dyn ProjectionStore>> = Vec::new();
        for (file, projections) in by_file {
            stores.push(Arc::new(self.store(&file)?.serving(&projections)));
        }
        Ok(match stores.len() {
            1 => stores.remove(0),
            _ => Arc::new(Fanout::new(stores)),
        })
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

    async fn beat(&self, beat: &Heartbeat) -> Result<(), ProjectionError> {
        let beat = beat.clone();
        self.with_layout(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO heartbeats (process, label, revision, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![
                    beat.process.to_string(),
                    beat.label,
                    beat.revision as i64,
                    beat.expires_at
                ],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn heartbeats(&self) -> Result<Vec<Heartbeat>, ProjectionError> {
        self.with_layout(|conn| {
            let mut statement = conn
                .prepare(
                    "SELECT process, label, revision, expires_at FROM heartbeats ORDER BY process",
                )
                .map_err(sql)?;
            let rows = statement
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })
                .map_err(sql)?;
            let mut beats = Vec::new();
            for row in rows {
                let (process, label, revision, expires_at) = row.map_err(sql)?;
                let process = process
                    .parse()
                    .map_err(|e| ProjectionError::request("reading a heartbeat row", e))?;
                beats.push(Heartbeat {
                    process,
                    label,
                    revision: revision as u64,
                    expires_at,
                });
            }
            Ok(beats)
        })
        .await
    }

    async fn forget(&self, beat: &Heartbeat) -> Result<(), ProjectionError> {
        let beat = beat.clone();
        self.with_layout(move |conn| {
            conn.execute(
                "DELETE FROM heartbeats WHERE process = ?1 AND revision = ?2 AND expires_at = ?3",
                rusqlite::params![
                    beat.process.to_string(),
                    beat.revision as i64,
                    beat.expires_at
                ],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::batch::deactivated;
    use uuid::Uuid;

    #[tokio::test]
    async fn a_shared_file_of_an_older_release_keeps_serving_until_its_last_projection_retires() {
        let dir = tempfile::tempdir().expect("temp dir");
        let generations = SqliteGenerations::open(dir.path()).expect("open");
        // An older release rebuilt warehouses and movements together into one file.
        let shared = SqliteGenerations::file(dir.path(), 1);
        let old = SqliteProjections::open(&shared).expect("old file");
        let envelope = deactivated(Uuid::now_v7(), 1);
        old.apply(vec![envelope]).await.expect("apply");

        // Routed there by the layout, each projection is served from the shared file.
        for projection in [ProjectionName::Warehouses, ProjectionName::StockMovements] {
            let adapter = generations.open(projection, 1, false).await.expect("open");
            let dump = adapter.dump().await.expect("dump");
            let expected = usize::from(projection == ProjectionName::Warehouses);
            assert_eq!(dump.warehouses.len(), expected, "{projection}");
        }
        // Retiring one leaves the other's rows; the file goes with the last.
        generations
            .retire(ProjectionName::StockMovements, 1)
            .await
            .expect("retire movements");
        assert!(shared.exists());
        generations
            .retire(ProjectionName::Warehouses, 1)
            .await
            .expect("retire warehouses");
        assert!(!shared.exists());

        // A new rebuild gives each projection a file of its own.
        generations
            .open(ProjectionName::StockMovements, 2, true)
            .await
            .expect("create");
        assert!(dir
            .path()
            .join("projections-g2-stock_movements.db")
            .exists());
        assert!(!SqliteGenerations::file(dir.path(), 2).exists());
    }
}
