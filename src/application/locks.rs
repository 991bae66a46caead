//! Striped in-process locks keyed by aggregate id. Commands on one aggregate queue here
//! instead of racing to the store and retrying; this only saves work — correctness comes from
//! the store's conditional append, which also covers other processes.

use std::hash::{Hash, Hasher};
use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;

const STRIPES: usize = 1024;

pub struct StripedLocks {
    stripes: Vec<Mutex<()>>,
}

impl StripedLocks {
    pub fn new() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    pub async fn lock(&self, id: Uuid) -> MutexGuard<'_, ()> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut hasher);
        self.stripes[hasher.finish() as usize % STRIPES]
            .lock()
            .await
    }
}
