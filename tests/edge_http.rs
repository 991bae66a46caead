//! The HTTP edge as an attacker or a careless client meets it, over real TCP against the real
//! binary: trickled headers, a lying `Content-Length`, an endless chunked body, a foreign
//! `Host` (DNS rebinding), non-JSON bodies, and `/metrics` on its own listener. Each test
//! prints what it measured. (Who the caller is: tests/edge_callers.rs.)

mod common;

use common::edge::{
    self, codes_after_control, create_body, post, raw, read_until_closed, start, status_of, tcp,
};
use common::Server;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn trickled_headers_and_silent_connections_are_closed_at_the_header_timeout() {
    let (server, _dir) = start(&[("INVENTORY_HEADER_READ_TIMEOUT_MS", "1000")]).await;
    let started = Instant::now();
    let mut clients = Vec::new();
    for n in 0..50 {
        let mut stream = tcp(&server).await;
        clients.push(tokio::spawn(async move {
            let opened = Instant::now();
            let (mut read, mut write) = stream.split();
            let trickle = async {
                // Half of them trickle a header a byte at a time; the rest send nothing.
                if n % 2 == 0 {
                    let _ = write.write_all(b"GET /health/live HTTP/1.1\r\n").await;
                    for byte in b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".iter() {
                        if write.write_all(&[*byte]).await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                std::future::pending::<()>().await;
            };
            let closed = async {
                let mut buffer = [0u8; 1024];
                loop {
                    match tokio::io::AsyncReadExt::read(&mut read, &mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => continue,
                    }
                }
            };
            let ended = tokio::time::timeout(Duration::from_secs(30), async {
                tokio::select! { () = trickle => {}, () = closed => {} }
            })
            .await;
            (ended.is_ok(), opened.elapsed())
        }));
    }
    // Meanwhile a well-behaved client is served.
    assert_eq!(
        server.data("{ __typename }", json!({})).await["__typename"],
        "Query"
    );
    let mut times = Vec::new();
    for client in clients {
        let (closed, after) = client.await.expect("client");
        assert!(closed, "a connection was still open after 30 s");
        times.push(after);
    }
    times.sort();
    eprintln!(
        "slowloris: 50 connections (25 trickling, 25 silent), header timeout 1 s: closed after {:?} (first) / {:?} (median) / {:?} (last); all gone {:?} after the first opened",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1],
        started.elapsed()
    );
    assert!(times[times.len() - 1] < Duration::from_secs(10));
}

#[tokio::test]
async fn a_body_that_never_arrives_is_cut_off_at_the_body_deadline() {
    let (server, _dir) = start(&[("INVENTORY_BODY_READ_TIMEOUT_MS", "1000")]).await;
    let host = edge::authority(&server);

    // A Content-Length of 1000, then 10 bytes and silence.
    let mut stream = tcp(&server).await;
    let head = format!("POST /graphql HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"query\":");
    stream.write_all(head.as_bytes()).await.expect("write");
    let started = Instant::now();
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(30)).await;
    let lying = started.elapsed();
    eprintln!(
        "lying Content-Length: answered {} and closed after {lying:?} (deadline 1 s)",
        status_of(&answer)
    );
    assert!(closed, "still open: {answer}");
    assert_eq!(status_of(&answer), 408, "{answer}");
    assert!(answer.contains("REQUEST_TIMEOUT"), "{answer}");
    assert!(lying < Duration::from_secs(10));

    // An endless chunked body, a chunk every 50 ms.
    let stream = tcp(&server).await;
    let (mut read, mut write) = stream.into_split();
    let head = format!("POST /graphql HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    write.write_all(head.as_bytes()).await.expect("write");
    let writer = tokio::spawn(async move {
        let mut sent = 0usize;
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until && write.write_all(b"1\r\n \r\n").await.is_ok() {
            sent += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sent
    });
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match tokio::io::AsyncReadExt::read(&mut read, &mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .is_ok();
    let endless = started.elapsed();
    let chunks = writer.await.expect("writer");
    let answer = String::from_utf8_lossy(&received);
    eprintln!(
        "endless chunked body: closed after {endless:?} (deadline 1 s), answer {} after {chunks} chunks",
        status_of(&answer)
    );
    assert!(closed);
    assert!(endless < Duration::from_secs(10));
    // The server is fine afterwards.
    assert_eq!(
        server.data("{ __typename }", json!({})).await["__typename"],
        "Query"
    );
}

#[tokio::test]
async fn a_foreign_host_is_refused_and_the_loopback_names_are_served() {
    let (server, _dir) = start(&[("INVENTORY_ALLOWED_HOSTS", "inventory.test")]).await;
    let port = edge::authority(&server)
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let body = create_body("REBIND");
    for host in ["evil.example", &format!("evil.example:{port}"), "127.0.0.2"] {
        let answer = raw(
            &server,
            &format!("POST /graphql HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()),
        )
        .await;
        eprintln!("Host: {host} → {}", status_of(&answer));
        assert_eq!(status_of(&answer), 421, "{answer}");
        assert!(answer.contains("HOST_NOT_ALLOWED"), "{answer}");
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("inventory.test:{port}"),
    ] {
        let answer = raw(
            &server,
            &format!("GET /health/live HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        eprintln!("Host: {host} → {}", status_of(&answer));
        assert_eq!(status_of(&answer), 200, "{answer}");
    }
    assert!(!codes_after_control(&server)
        .await
        .contains(&"REBIND".to_owned()));
}

#[tokio::test]
async fn a_post_that_is_not_json_is_refused_and_writes_nothing() {
    let server = Server::start().await;
    for (content_type, code) in [
        (Some("text/plain"), "PLAIN"),
        (Some("application/x-www-form-urlencoded"), "FORM"),
        (Some("multipart/form-data; boundary=x"), "MULTI"),
        (None, "NONE"),
    ] {
        let mut request = post(&server).body(create_body(code));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("json");
        eprintln!("Content-Type {content_type:?} → {status}");
        assert_eq!(status, 415, "{content_type:?}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"],
            "UNSUPPORTED_MEDIA_TYPE"
        );
    }
    // The spec's own type is accepted as a body type too.
    let response = post(&server)
        .header("content-type", "application/graphql-response+json")
        .body(json!({"query": "{ __typename }"}).to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 200);
    let codes = codes_after_control(&server).await;
    assert_eq!(codes, vec!["CONTROL".to_owned()], "{codes:?}");
}

#[tokio::test]
async fn metrics_are_served_only_on_their_own_listener_when_one_is_given() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let address = format!("127.0.0.1:{port}");
    let (server, _dir) = start(&[("INVENTORY_METRICS_LISTEN", address.as_str())]).await;
    server.until_ready().await;
    let main = reqwest::get(format!("{}/metrics", server.url))
        .await
        .expect("main");
    assert_eq!(main.status().as_u16(), 404);
    let own = reqwest::get(format!("http://{address}/metrics"))
        .await
        .expect("metrics listener");
    let status = own.status().as_u16();
    let text = own.text().await.unwrap_or_default();
    eprintln!(
        "/metrics: main listener 404, {address} {status} ({} bytes)",
        text.len()
    );
    assert_eq!(status, 200);
    assert!(text.contains("inventory_"), "{text}");
}
