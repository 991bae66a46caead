//! Locks that outlive a panic. A std lock is poisoned when a thread panics while holding it;
//! every lock in this crate guards plain data (maps, handles, the latest routing) whose each
//! update is one assignment or insert, so the data is whole and the right answer is to go on.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `mutex`, taking it over from a thread that panicked while holding it.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads `lock`, as [`lock`] does.
pub fn read<T: ?Sized>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Writes `lock`, as [`lock`] does.
pub fn write<T: ?Sized>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_lock_poisoned_by_a_panic_is_taken_over_with_its_data() {
        let shared = Arc::new((Mutex::new(1), RwLock::new(2)));
        let clone = shared.clone();
        let panicked = std::thread::spawn(move || {
            let _held = clone.0.lock();
            let _written = clone.1.write();
            panic!("while holding both locks");
        })
        .join();
        assert!(panicked.is_err());
        assert!(shared.0.is_poisoned() && shared.1.is_poisoned());
        *lock(&shared.0) += 10;
        *write(&shared.1) += 20;
        assert_eq!(*lock(&shared.0), 11);
        assert_eq!(*read(&shared.1), 22);
    }
}
