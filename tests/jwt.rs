//! Tokens from an identity provider, through a running server: a JWKS published over HTTP (as a
//! provider does), an issuer and an audience configured, nobody anonymous. A valid token acts
//! with its role and warehouses over HTTP and over WebSocket; an expired one, one for another
//! audience, one signed by a key the provider never published, and a forged `alg: none` one are
//! each refused with 401 and change nothing.

mod common;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use common::edge::{self, init, send, Reply};
use common::Server;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::Duration;

const ISSUER: &str = "https://id.example";
const AUDIENCE: &str = "inventory";

struct Key {
    kid: &'static str,
    pair: Ed25519KeyPair,
}

impl Key {
    fn new(kid: &'static str) -> Key {
        Key {
            kid,
            pair: Ed25519KeyPair::generate().expect("a key"),
        }
    }

    fn jwk(&self) -> Value {
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(self.pair.public_key().as_ref());
        json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": self.kid, "alg": "EdDSA", "use": "sig"})
    }

    fn sign(&self, claims: &Value) -> String {
        let der = self.pair.to_pkcs8().expect("PKCS#8");
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.into());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(der.as_ref()))
            .expect("signed")
    }
}

fn claims(role: &str, warehouses: &[&str], extra: Value) -> Value {
    let mut claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": format!("{role}@corp"),
        "exp": chrono::Utc::now().timestamp() + 600, "role": role, "warehouses": warehouses,
    });
    if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
        claims.extend(extra.clone());
    }
    claims
}

/// Serves `jwks` at `http://127.0.0.1:PORT/jwks.json`, as a provider's discovery would.
async fn publish(jwks: Value) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/jwks.json")
}

async fn post(server: &Server, token: Option<&str>, query: &str, variables: Value) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/graphql", server.url))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

const ADJUST: &str =
    "mutation($i: ID!) { inventoryAdjust(input: {itemId: $i, delta: 1, reason: RECEIVED}) {
    inventoryItem { onHand } userErrors { code } } }";
const ITEM: &str = "query($i: ID!) { inventoryItem(id: $i) { onHand } }";

#[tokio::test(flavor = "multi_thread")]
async fn tokens_from_a_published_jwks_act_with_their_role_and_warehouses_and_bad_ones_change_nothing(
) {
    let provider = Key::new("k1");
    let jwks = publish(json!({"keys": [provider.jwk()]})).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_with(
        dir.path(),
        &[
            ("INVENTORY_ANONYMOUS_ROLE", "none"),
            ("INVENTORY_JWT_JWKS", jwks.as_str()),
            ("INVENTORY_JWT_ISSUER", ISSUER),
            ("INVENTORY_JWT_AUDIENCE", AUDIENCE),
        ],
    )
    .await;
    server.until_ready().await;

    // The admin sets up two warehouses with an item each.
    let admin = provider.sign(&claims("admin", &[], json!({})));
    let mut items = Vec::new();
    let mut warehouses = Vec::new();
    for code in ["JWT-A", "JWT-B"] {
        let (status, body) = post(
            &server,
            Some(&admin),
            "mutation($c: String!) { warehouseCreate(input: {name: \"W\", code: $c}) { warehouse { id } userErrors { code } } }",
            json!({ "c": code }),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let warehouse = body["data"]["warehouseCreate"]["warehouse"]["id"]
            .as_str()
            .expect("warehouse id")
            .to_owned();
        let (status, body) = post(
            &server,
            Some(&admin),
            "mutation($w: ID!) { inventoryItemCreate(input: {warehouseId: $w, sku: \"S\", productId: \"p\", initialQuantity: 5, reorderThreshold: 1}) { inventoryItem { id } userErrors { code } } }",
            json!({ "w": warehouse }),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        items.push(
            body["data"]["inventoryItemCreate"]["inventoryItem"]["id"]
                .as_str()
                .expect("item id")
                .to_owned(),
        );
        warehouses.push(warehouse);
    }

    // Nobody anonymous; an operator of warehouse A adjusts A's item, not B's.
    let (status, body) = post(&server, None, ITEM, json!({ "i": items[0] })).await;
    assert_eq!(
        (status, code(&body)),
        (401, Some("UNAUTHENTICATED")),
        "{body}"
    );
    let operator = provider.sign(&claims("operator", &[&warehouses[0]], json!({})));
    let (status, body) = post(&server, Some(&operator), ADJUST, json!({ "i": items[0] })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["inventoryAdjust"]["inventoryItem"]["onHand"], 6,
        "{body}"
    );
    let (_, body) = post(&server, Some(&operator), ADJUST, json!({ "i": items[1] })).await;
    assert_eq!(code(&body), Some("FORBIDDEN"), "{body}");
    let (_, body) = post(
        &server,
        Some(&operator),
        "{ viewer { name role warehouseIds } }",
        json!({}),
    )
    .await;
    assert_eq!(
        body["data"]["viewer"],
        json!({"name": "operator@corp", "role": "OPERATOR", "warehouseIds": [warehouses[0]]}),
        "{body}"
    );
    // A viewer reads, and may not write.
    let viewer = provider.sign(&claims("viewer", &[], json!({})));
    let (_, body) = post(&server, Some(&viewer), ADJUST, json!({ "i": items[1] })).await;
    assert_eq!(code(&body), Some("FORBIDDEN"), "{body}");

    // Refused at the door, each with 401 and nothing changed.
    let stranger = Key::new("k1");
    let mut forged_header = json!({"alg": "none", "typ": "JWT"}).to_string();
    forged_header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged_header);
    let forged_claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(claims("admin", &[], json!({})).to_string());
    let bad = [
        (
            "expired",
            provider.sign(&claims(
                "admin",
                &[],
                json!({"exp": chrono::Utc::now().timestamp() - 3600}),
            )),
        ),
        (
            "another audience",
            provider.sign(&claims("admin", &[], json!({"aud": "billing"}))),
        ),
        (
            "another issuer",
            provider.sign(&claims(
                "admin",
                &[],
                json!({"iss": "https://evil.example"}),
            )),
        ),
        (
            "a key never published",
            stranger.sign(&claims("admin", &[], json!({}))),
        ),
        ("alg none", format!("{forged_header}.{forged_claims}.")),
    ];
    for (what, token) in &bad {
        let (status, body) = post(&server, Some(token), ADJUST, json!({ "i": items[1] })).await;
        assert_eq!(
            (status, code(&body)),
            (401, Some("UNAUTHENTICATED")),
            "{what}: {body}"
        );
    }
    let (_, body) = post(&server, Some(&viewer), ITEM, json!({ "i": items[1] })).await;
    assert_eq!(
        body["data"]["inventoryItem"]["onHand"], 5,
        "B's item unchanged: {body}"
    );

    // Over WebSocket the token goes in connection_init; scoping holds there too.
    let mut socket = edge::websocket(&server, &[], None)
        .await
        .expect("websocket");
    let ack = init(
        &mut socket,
        json!({"Authorization": format!("Bearer {operator}")}),
    )
    .await;
    assert!(
        matches!(&ack, Reply::Json(ack) if ack["type"] == "connection_ack"),
        "{ack:?}"
    );
    send(
        &mut socket,
        json!({"id": "b", "type": "subscribe", "payload": {
            "query": "subscription($w: ID!) { lowStockAlerts(warehouseId: $w) { itemId } }",
            "variables": {"w": warehouses[1]}}}),
    )
    .await;
    // Refused as a GraphQL error of the operation (`next` with `errors`), the socket kept.
    let reply = edge::next(&mut socket, Duration::from_secs(10)).await;
    let forbidden = match &reply {
        Reply::Json(message) if message["id"] == "b" => {
            message["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        }
        _ => false,
    };
    assert!(forbidden, "{reply:?}");
    // Its own warehouse's alerts reach it: each fall to the threshold raises one (retried
    // until the subscription is live; a rise above the threshold re-arms it).
    send(
        &mut socket,
        json!({"id": "a", "type": "subscribe", "payload": {
            "query": "subscription($w: ID!) { lowStockAlerts(warehouseId: $w) { itemId } }",
            "variables": {"w": warehouses[0]}}}),
    )
    .await;
    let step = "mutation($i: ID!, $d: Int!, $r: AdjustmentReason!) { inventoryAdjust(input: {itemId: $i, delta: $d, reason: $r}) { userErrors { code } } }";
    let mut alerted = false;
    for _ in 0..10 {
        let (status, body) = post(
            &server,
            Some(&operator),
            step,
            json!({ "i": items[0], "d": -5, "r": "CORRECTION" }),
        )
        .await;
        assert_eq!(
            (status, &body["data"]["inventoryAdjust"]["userErrors"]),
            (200, &json!([])),
            "{body}"
        );
        if let Reply::Json(message) = edge::next(&mut socket, Duration::from_secs(3)).await {
            if message["id"] == "a" {
                assert_eq!(
                    message["payload"]["data"]["lowStockAlerts"]["itemId"],
                    json!(items[0])
                );
                alerted = true;
                break;
            }
        }
        post(
            &server,
            Some(&operator),
            step,
            json!({ "i": items[0], "d": 5, "r": "RECEIVED" }),
        )
        .await;
    }
    assert!(
        alerted,
        "the operator's subscription received its warehouse's alert"
    );
    let mut refused = edge::websocket(&server, &[], None)
        .await
        .expect("websocket");
    let expired = &bad[0].1;
    let reply = init(
        &mut refused,
        json!({"Authorization": format!("Bearer {expired}")}),
    )
    .await;
    assert!(
        matches!(&reply, Reply::Closed(Some((4403, _)))),
        "an expired token closes the socket with 4403 before connection_ack: {reply:?}"
    );
}
