//! The dashboard at `/` as a person uses it: tests/js/dashboard.mjs drives it in Debian's
//! headless Chromium (playwright-core, every request to another host refused) against the real
//! binary on a fresh embedded store, and checks what the page shows against what the API says.
//! The script seeds through the API, changes things through the API as another client would,
//! acts from the page, and asks this test to kill the service and start it again on the same
//! port and data directory (lines `@kill` and `@start` on its stdout, answered on its stdin),
//! to see the page notice, reconnect and show what changed after. It prints its measurements
//! (page load to a table of 100 items, mutation to row update); screenshots land in
//! target/dashboard-screenshots/. tests/js/dashboard_signin.mjs signs in on a service whose
//! anonymous callers have no role, with a viewer's key, an operator's and a refused one.
//! Needs what tests/js_clients.rs needs (scripts/test.sh).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::Server;

fn js_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js"))
}

/// What the script asked of the test, one request a line.
enum Request {
    Kill,
    Start,
}

#[tokio::test]
async fn the_dashboard_lists_updates_alerts_acts_and_reconnects_in_a_browser() {
    let dir = js_dir();
    assert!(
        dir.join("node_modules").is_dir(),
        "tests/js/node_modules is missing: run scripts/test.sh, which installs the JS test \
         packages (npm ci in tests/js) and Chromium before running the tests"
    );
    let shots = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/dashboard-screenshots"
    ));
    let _ = std::fs::remove_dir_all(&shots);

    let temp = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start_on(temp.path()).await;
    let listen = server
        .url
        .strip_prefix("http://")
        .expect("an http URL")
        .to_owned();

    let mut node = Command::new("node")
        .arg("dashboard.mjs")
        .arg(&server.url)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("could not run node ({e}): the JS tests need Node.js; see scripts/test.sh")
        });
    let mut to_script = node.stdin.take().expect("stdin");
    let from_script = BufReader::new(node.stdout.take().expect("stdout"));

    // The script's output is read on a thread of its own; requests come back over a channel.
    let (requests, mut asked) = tokio::sync::mpsc::unbounded_channel();
    let reader = std::thread::spawn(move || {
        let mut transcript = String::new();
        for line in from_script.lines() {
            let Ok(line) = line else { break };
            eprintln!("{line}");
            transcript.push_str(&line);
            transcript.push('\n');
            let request = match line.trim() {
                "@kill" => Request::Kill,
                "@start" => Request::Start,
                _ => continue,
            };
            if requests.send(request).is_err() {
                break;
            }
        }
        transcript
    });

    while let Some(request) = asked.recv().await {
        match request {
            Request::Kill => {
                server.kill();
                writeln!(to_script, "killed").expect("tell the script");
            }
            Request::Start => {
                server = Server::start_listening(temp.path(), &listen, &[]).await;
                server.until_ready().await;
                writeln!(to_script, "started").expect("tell the script");
            }
        }
    }
    let status = node.wait().expect("wait for node");
    let transcript = reader.join().expect("reader");
    assert!(
        status.success(),
        "node dashboard.mjs failed ({status}); its output is above"
    );
    assert!(
        transcript.contains("dashboard: ok"),
        "the script did not finish: {transcript}"
    );
    for name in [
        "desktop-items.png",
        "desktop-item.png",
        "phone-items.png",
        "phone-item.png",
    ] {
        let size = std::fs::metadata(shots.join(name))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(size > 10_000, "no screenshot {name} ({size} bytes)");
    }
}

#[tokio::test]
async fn the_dashboard_asks_for_a_key_and_offers_commands_only_to_those_who_may_run_them() {
    let dir = js_dir();
    assert!(
        dir.join("node_modules").is_dir(),
        "tests/js/node_modules is missing: run scripts/test.sh"
    );
    let temp = tempfile::tempdir().expect("temp dir");
    let server = Server::start_with(temp.path(), &[("INVENTORY_ANONYMOUS_ROLE", "none")]).await;
    let admin = server.create_key("dash-admin", "admin");
    let viewer = server.create_key("dash-viewer", "viewer");
    let operator = server.create_key("dash-operator", "operator");
    let output = Command::new("node")
        .args([
            "dashboard_signin.mjs",
            &server.url,
            &admin,
            &viewer,
            &operator,
        ])
        .current_dir(&dir)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("--- node dashboard_signin.mjs ---\n{stdout}{stderr}");
    assert!(
        output.status.success() && stdout.contains("dashboard_signin: ok"),
        "node dashboard_signin.mjs failed ({}):\n{stdout}{stderr}",
        output.status
    );
}
