//! The key directory over an in-memory store that counts its reads: what is found, what is
//! remembered and for how long, and what never reaches the store.

use super::*;
use crate::store::memory::MemoryEventStore;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The in-memory store, counting `key_by_hash` calls, failing them while `down` is set.
#[derive(Default)]
struct Counted {
    inner: MemoryEventStore,
    reads: AtomicUsize,
    down: std::sync::atomic::AtomicBool,
}

impl Counted {
    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl KeyStore for Counted {
    async fn create_key(&self, key: &ApiKey) -> Result<(), KeyError> {
        self.inner.create_key(key).await
    }
    async fn keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.inner.keys().await
    }
    async fn revoke_key(&self, name: &str, at: i64) -> Result<bool, StoreError> {
        self.inner.revoke_key(name, at).await
    }
    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        // Slow enough that concurrent lookups overlap.
        tokio::time::sleep(Duration::from_millis(20)).await;
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable("down for the test"));
        }
        self.inner.key_by_hash(hash).await
    }
}

/// A directory whose answers stay fresh for `fresh`, over a counted store.
fn directory(fresh: Duration) -> (KeyDirectory, Arc<Counted>) {
    let store = Arc::new(Counted::default());
    let mut directory = KeyDirectory::new(store.clone());
    directory.fresh = fresh;
    (directory, store)
}

async fn issue(store: &Counted, name: &str, role: Role, warehouses: Vec<Uuid>) -> String {
    let (key, secret) = ApiKey::issue(name, role, warehouses, false, 1_700_000_000_000).unwrap();
    store.create_key(&key).await.unwrap();
    secret
}

#[test]
fn a_secret_is_the_prefix_and_64_hex_digits_and_never_repeats() {
    let one = new_secret();
    let two = new_secret();
    assert!(one.starts_with(SECRET_PREFIX), "{one}");
    assert_eq!(one.len(), SECRET_PREFIX.len() + 64);
    assert!(is_secret_shaped(&one) && is_secret_shaped(&two));
    assert_ne!(one, two);
}

#[test]
fn the_stored_hash_is_hex_sha256() {
    // FIPS 180-2's test vector.
    assert_eq!(
        hash("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn only_the_shape_of_a_new_secret_passes_for_one() {
    let secret = new_secret();
    assert!(is_secret_shaped(&secret));
    for text in [
        "",
        "inv_",
        &secret[..secret.len() - 1],
        &format!("{secret}0"),
        &secret.to_uppercase(),
        &secret.replacen(SECRET_PREFIX, "key_", 1),
        &format!("{}g", &secret[..secret.len() - 1]),
        "eyJhbGciOiJSUzI1NiJ9.e30.sig",
    ] {
        assert!(!is_secret_shaped(text), "{text:?}");
    }
}

#[test]
fn names_are_short_plain_and_not_anonymous() {
    for name in [
        "ci",
        "dashboard-1",
        "svc.reorder@acme:prod",
        "a_b",
        &"x".repeat(64),
    ] {
        assert!(check_name(name).is_ok(), "{name}");
    }
    for name in [
        "",
        "has space",
        "quote\"",
        "new\nline",
        "é",
        "anonymous",
        &"x".repeat(65),
    ] {
        assert!(
            matches!(check_name(name), Err(KeyError::BadName(_))),
            "{name:?}"
        );
    }
}

#[test]
fn an_issued_key_keeps_only_the_hash_and_each_warehouse_once() {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let (key, secret) = ApiKey::issue("ops", Role::Operator, vec![b, a, b], true, 5).unwrap();
    assert_eq!(key.hash, hash(&secret));
    assert!(!serde_json::to_string(&key).unwrap().contains(&secret));
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(key.warehouses, expected);
    assert_eq!((key.created_at, key.revoked_at), (5, None));
    assert!(matches!(
        ApiKey::issue("bad name", Role::Viewer, vec![], false, 5),
        Err(KeyError::BadName(_))
    ));
}

#[tokio::test]
async fn a_secret_finds_its_principal_with_role_and_warehouses() {
    let (directory, store) = directory(KeyDirectory::FRESH);
    let warehouse = Uuid::new_v4();
    let secret = issue(&store, "scanner", Role::Operator, vec![warehouse]).await;
    let principal = directory.principal(&secret).await.unwrap().expect("known");
    assert_eq!(principal.name, "scanner");
    assert_eq!(principal.role, Some(Role::Operator));
    assert_eq!(principal.kind, Kind::ApiKey);
    assert!(principal.sees(warehouse));
    assert!(!principal.sees(Uuid::new_v4()));
    assert!(!principal.acts_for_others);
}

#[tokio::test]
async fn an_unknown_secret_is_asked_once_per_freshness() {
    let (directory, store) = directory(Duration::from_millis(200));
    let unknown = new_secret();
    for _ in 0..50 {
        assert_eq!(directory.principal(&unknown).await.unwrap(), None);
    }
    assert_eq!(store.reads(), 1, "the unknown answer is remembered");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(directory.principal(&unknown).await.unwrap(), None);
    assert_eq!(store.reads(), 2, "and asked again once stale");
}

#[tokio::test]
async fn concurrent_lookups_of_one_secret_share_one_read() {
    let (directory, store) = directory(KeyDirectory::FRESH);
    let secret = issue(&store, "busy", Role::Viewer, vec![]).await;
    let bad = new_secret();
    let lookups = (0..20).map(|i| {
        let secret = if i % 2 == 0 { &secret } else { &bad };
        directory.principal(secret)
    });
    let answers = futures::future::join_all(lookups).await;
    assert_eq!(
        answers.iter().filter(|a| matches!(a, Ok(Some(_)))).count(),
        10
    );
    assert_eq!(answers.iter().filter(|a| matches!(a, Ok(None))).count(), 10);
    assert_eq!(store.reads(), 2, "one read per secret");
}

#[tokio::test]
async fn a_revoked_key_is_refused_once_its_answer_is_stale() {
    let (directory, store) = directory(Duration::from_millis(200));
    let secret = issue(&store, "leaked", Role::Admin, vec![]).await;
    assert!(directory.principal(&secret).await.unwrap().is_some());
    // Revoked elsewhere (another instance, the CLI): this one learns within the freshness.
    assert!(store.revoke_key("leaked", 10).await.unwrap());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(directory.principal(&secret).await.unwrap(), None);
    // Revoking again changes nothing.
    assert!(!store.revoke_key("leaked", 11).await.unwrap());
}

#[tokio::test]
async fn the_real_freshness_is_one_second() {
    let (directory, store) = directory(KeyDirectory::FRESH);
    assert_eq!(KeyDirectory::FRESH, Duration::from_secs(1));
    let secret = issue(&store, "revoked-soon", Role::Viewer, vec![]).await;
    assert!(directory.principal(&secret).await.unwrap().is_some());
    store.revoke_key("revoked-soon", 10).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    assert_eq!(directory.principal(&secret).await.unwrap(), None);
    assert_eq!(store.reads(), 2);
}

#[tokio::test]
async fn what_is_not_shaped_like_a_secret_never_reaches_the_store() {
    let (directory, store) = directory(KeyDirectory::FRESH);
    for text in ["", "inv_short", "Bearer x", "eyJhbGciOiJSUzI1NiJ9.e30.sig"] {
        assert_eq!(directory.principal(text).await.unwrap(), None);
    }
    assert_eq!(store.reads(), 0);
}

#[tokio::test]
async fn a_store_failure_is_reported_and_not_remembered() {
    let (directory, store) = directory(KeyDirectory::FRESH);
    let secret = issue(&store, "steady", Role::Viewer, vec![]).await;
    store.down.store(true, Ordering::SeqCst);
    assert!(directory.principal(&secret).await.is_err());
    store.down.store(false, Ordering::SeqCst);
    assert!(directory.principal(&secret).await.unwrap().is_some());
    assert_eq!(store.reads(), 2);
}

#[tokio::test]
async fn a_full_directory_forgets_everything_and_stays_bounded() {
    let (mut directory, store) = directory(KeyDirectory::FRESH);
    directory.capacity = 8;
    let secret = issue(&store, "regular", Role::Viewer, vec![]).await;
    assert!(directory.principal(&secret).await.unwrap().is_some());
    for _ in 0..20 {
        directory.principal(&new_secret()).await.unwrap();
        assert!(crate::sync::lock(&directory.seen).len() <= 8);
    }
    // Forgotten with the rest, so asked again.
    let before = store.reads();
    assert!(directory.principal(&secret).await.unwrap().is_some());
    assert_eq!(store.reads(), before + 1);
}
