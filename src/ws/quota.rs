//! What all WebSockets together may hold: at most `max_connections` open at once (a permit per
//! socket, given back when it closes), and at most `max_operations_per_principal` operations
//! running for one principal over all its sockets (a slot per operation, given back when it
//! ends, however it ends: the slot lives in the operation's task).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::WsConfig;

/// The WebSocket endpoint's settings and what its sockets share.
#[derive(Debug, Clone)]
pub struct Sockets {
    pub config: WsConfig,
    open: Arc<Semaphore>,
    running: Arc<Running>,
}

impl Default for Sockets {
    fn default() -> Self {
        Self::new(WsConfig::default())
    }
}

impl Sockets {
    pub fn new(config: WsConfig) -> Self {
        Self {
            open: Arc::new(Semaphore::new(config.max_connections)),
            running: Arc::new(Running {
                max: config.max_operations_per_principal,
                by_principal: Mutex::new(HashMap::new()),
            }),
            config,
        }
    }

    /// A permit for one more socket, or `None` when `max_connections` are open.
    pub fn try_open(&self) -> Option<SocketPermit> {
        let permit = self.open.clone().try_acquire_owned().ok()?;
        metrics::gauge!(crate::metrics::WEBSOCKETS).increment(1.0);
        Some(SocketPermit { _permit: permit })
    }

    /// A slot for one more operation of `principal`, or `None` when it runs its maximum.
    pub(super) fn try_run(&self, principal: &str) -> Option<OperationSlot> {
        let mut by_principal = crate::sync::lock(&self.running.by_principal);
        let running = by_principal.entry(principal.to_owned()).or_insert(0);
        if *running >= self.running.max {
            return None;
        }
        *running += 1;
        Some(OperationSlot {
            running: self.running.clone(),
            principal: principal.to_owned(),
        })
    }

    /// How many operations `principal` runs now (tests).
    pub fn running(&self, principal: &str) -> usize {
        let by_principal = crate::sync::lock(&self.running.by_principal);
        by_principal.get(principal).copied().unwrap_or(0)
    }
}

#[derive(Debug)]
struct Running {
    max: usize,
    by_principal: Mutex<HashMap<String, usize>>,
}

/// One open socket; dropping it lets another open.
pub struct SocketPermit {
    _permit: OwnedSemaphorePermit,
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        metrics::gauge!(crate::metrics::WEBSOCKETS).decrement(1.0);
    }
}

/// One running operation of a principal; dropping it lets another run.
pub(super) struct OperationSlot {
    running: Arc<Running>,
    principal: String,
}

impl Drop for OperationSlot {
    fn drop(&mut self) {
        let mut by_principal = crate::sync::lock(&self.running.by_principal);
        if let Some(running) = by_principal.get_mut(&self.principal) {
            *running = running.saturating_sub(1);
            if *running == 0 {
                by_principal.remove(&self.principal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_and_operations_are_counted_until_they_end() {
        let sockets = Sockets::new(WsConfig {
            max_connections: 2,
            max_operations_per_principal: 2,
            ..WsConfig::default()
        });
        let first = sockets.try_open().expect("first");
        let _second = sockets.try_open().expect("second");
        assert!(sockets.try_open().is_none());
        drop(first);
        assert!(sockets.try_open().is_some());

        let a = sockets.try_run("alice").expect("one");
        let _b = sockets.try_run("alice").expect("two");
        assert!(sockets.try_run("alice").is_none());
        assert!(sockets.try_run("bob").is_some());
        drop(a);
        assert_eq!(sockets.running("alice"), 1);
        assert!(sockets.try_run("alice").is_some());
    }
}
