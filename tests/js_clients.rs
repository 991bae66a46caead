//! The service as JavaScript clients see it: each script in tests/js runs with Node.js against
//! the real binary on a fresh embedded store. graphiql.mjs drives the self-hosted GraphiQL in
//! Debian's headless Chromium with every other host refused; introspection.mjs checks with
//! graphql-js that the standard introspection query works and rebuilds schema.graphql;
//! graphql_ws.mjs subscribes with the npm graphql-ws client and provokes every close code of
//! graphql-transport-ws on raw sockets (and the legacy protocol's clean end); apollo.mjs
//! checks that @apollo/client's normalised cache follows mutations and alerts with no refetch
//! and answers node(id:) from the cache.
//! Needs node, npm-installed tests/js/node_modules and /usr/bin/chromium: scripts/test.sh
//! installs them.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn js_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js"))
}

/// Runs `node tests/js/<script> <url>`, shows its output, and fails unless it exits 0.
fn run_script(script: &str, url: &str) {
    let dir = js_dir();
    assert!(
        dir.join("node_modules").is_dir(),
        "tests/js/node_modules is missing: run scripts/test.sh, which installs the JS test \
         packages (npm ci in tests/js) and Chromium before running the tests"
    );
    let output = Command::new("node")
        .arg(script)
        .arg(url)
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("could not run node ({e}): the JS tests need Node.js; see scripts/test.sh")
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("--- node {script} ---\n{stdout}{stderr}");
    assert!(
        output.status.success(),
        "node {script} failed ({}):\n{stdout}{stderr}",
        output.status
    );
}

#[tokio::test]
async fn graphiql_renders_queries_and_subscribes_in_a_browser_with_no_other_host() {
    let screenshot = concat!(env!("CARGO_MANIFEST_DIR"), "/target/graphiql.png");
    let _ = std::fs::remove_file(screenshot);
    let server = common::Server::start().await;
    run_script("graphiql.mjs", &server.url);
    let size = std::fs::metadata(screenshot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "no screenshot at {screenshot} ({size} bytes)"
    );
}

#[tokio::test]
async fn graphql_js_introspects_the_service_and_rebuilds_the_committed_schema() {
    let server = common::Server::start().await;
    run_script("introspection.mjs", &server.url);
}

#[tokio::test]
async fn the_graphql_ws_client_gets_alerts_and_the_protocol_close_codes_hold() {
    let temp = tempfile::tempdir().expect("temp dir");
    // A short connection_init timeout, so the script sees 4408 quickly.
    let server =
        common::Server::start_with(temp.path(), &[("INVENTORY_WS_INIT_TIMEOUT_MS", "500")]).await;
    run_script("graphql_ws.mjs", &server.url);
}

#[tokio::test]
async fn apollo_client_keeps_its_cache_current_from_mutations_and_alerts_without_refetching() {
    let server = common::Server::start().await;
    run_script("apollo.mjs", &server.url);
}
