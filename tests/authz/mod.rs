//! The harness of the authorization tests (`authorization_roles`, `authorization_scope`,
//! `authorization_subscriptions`): the service driven through the library (the schema over a
//! temporary SQLite store, or DynamoDB with `INVENTORY_TEST_BACKEND=dynamodb`,
//! `Service::start`), each request run as the principal the HTTP and WebSocket edge puts into
//! `RequestMeta`, and a story of two warehouses to ask about.
#![allow(dead_code)]

use async_graphql::{Request, Response, Variables};
use inventory_service::app::Service;
use inventory_service::auth::{Kind, Principal, Role, Scope};
use inventory_service::graphql::{schema, InventorySchema, RequestMeta};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use uuid::Uuid;

pub struct App {
    pub service: Service,
    pub schema: InventorySchema,
    _dir: tempfile::TempDir,
}

/// The service on a temporary SQLite store, or on DynamoDB with `INVENTORY_TEST_BACKEND=dynamodb`
/// (and `INVENTORY_TEST_DYNAMODB_ENDPOINT`), each test on tables of its own.
pub async fn start() -> App {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = crate::common::library_storage(dir.path(), "authz", 100);
    let service = Service::start(&config).await.expect("start");
    let schema = schema(Some(service.context.clone()));
    App {
        service,
        schema,
        _dir: dir,
    }
}

pub fn known(name: &str, role: Role, warehouses: &[Uuid]) -> Principal {
    Principal {
        name: name.to_owned(),
        role: Some(role),
        scope: Scope::of(warehouses.iter().copied()),
        kind: Kind::ApiKey,
        acts_for_others: false,
    }
}

pub fn nobody() -> Principal {
    Principal::anonymous(None)
}

pub fn admin() -> Principal {
    known("admin", Role::Admin, &[])
}

pub fn request(principal: &Principal, query: &str, variables: Value) -> Request {
    Request::new(query)
        .variables(Variables::from_json(variables))
        .data(RequestMeta {
            principal: principal.clone(),
            actor: principal.name.clone(),
            correlation_id: Uuid::now_v7().to_string(),
        })
}

impl App {
    pub async fn run(&self, principal: &Principal, query: &str, variables: Value) -> Response {
        self.schema
            .execute(request(principal, query, variables))
            .await
    }

    /// The data of a request that must succeed.
    pub async fn data(&self, principal: &Principal, query: &str, variables: Value) -> Value {
        let response = self.run(principal, query, variables).await;
        assert!(
            response.errors.is_empty(),
            "{query} as {}: {:?}",
            principal.name,
            response.errors
        );
        response.data.into_json().expect("json")
    }

    pub async fn events_stored(&self) -> u64 {
        self.service
            .context
            .store
            .count_events()
            .await
            .expect("count")
    }

    pub async fn warehouse(&self, code: &str) -> Uuid {
        let data = self
            .data(
                &admin(),
                "mutation($code: String!) { warehouseCreate(input: { name: $code, code: $code }) \
                 { warehouse { id } userErrors { message } } }",
                json!({ "code": code }),
            )
            .await;
        id(&data["warehouseCreate"]["warehouse"]["id"])
    }

    /// An item with 20 on hand and a low-stock threshold of 10.
    pub async fn item(&self, warehouse: Uuid, sku: &str) -> Uuid {
        let data = self
            .data(
                &admin(),
                "mutation($w: ID!, $sku: String!) { inventoryItemCreate(input: { warehouseId: $w, \
                 sku: $sku, productId: $sku, initialQuantity: 20, reorderThreshold: 10 }) \
                 { inventoryItem { id } userErrors { message } } }",
                json!({ "w": warehouse, "sku": sku }),
            )
            .await;
        id(&data["inventoryItemCreate"]["inventoryItem"]["id"])
    }

    pub async fn allocation(&self, item: Uuid, order: &str) -> Uuid {
        let data = self
            .data(
                &admin(),
                "mutation($item: ID!, $order: String!) { allocationCreate(input: { orderId: $order, \
                 itemId: $item, quantity: 1 }) { allocation { id } userErrors { message } } }",
                json!({ "item": item, "order": order }),
            )
            .await;
        id(&data["allocationCreate"]["allocation"]["id"])
    }

    /// A transfer of one unit of `item` to `warehouse`, created.
    pub async fn transfer(&self, item: Uuid, warehouse: Uuid) -> Uuid {
        let data = self
            .data(
                &admin(),
                "mutation($item: ID!, $w: ID!) { transferCreate(input: { fromItemId: $item, \
                 toWarehouseId: $w, quantity: 1 }) { transfer { id } userErrors { message } } }",
                json!({ "item": item, "w": warehouse }),
            )
            .await;
        id(&data["transferCreate"]["transfer"]["id"])
    }

    pub async fn adjust(&self, item: Uuid, delta: i64) {
        let data = self
            .data(
                &admin(),
                "mutation($item: ID!, $delta: Int!) { inventoryAdjust(input: { itemId: $item, \
                 delta: $delta, reason: CORRECTION }) { userErrors { message } } }",
                json!({ "item": item, "delta": delta }),
            )
            .await;
        assert_eq!(data["inventoryAdjust"]["userErrors"], json!([]));
    }

    /// Waits until the read model holds `items` items and `allocations` allocations.
    pub async fn projected(&self, items: usize, allocations: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let data = self
                .data(
                    &admin(),
                    "{ inventoryItems(first: 500) { totalCount } allocations(first: 500) { totalCount } }",
                    json!({}),
                )
                .await;
            if data["inventoryItems"]["totalCount"] == items
                && data["allocations"]["totalCount"] == allocations
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "projections never caught up: {data}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub fn id(value: &Value) -> Uuid {
    Uuid::parse_str(value.as_str().unwrap_or_else(|| panic!("an id: {value}"))).expect("uuid")
}

pub fn code(response: &Response) -> Option<String> {
    let error = response.errors.first()?;
    let code = error.extensions.as_ref()?.get("code")?;
    Some(code.clone().into_json().ok()?.as_str()?.to_owned())
}

pub fn ids(connection: &Value) -> Vec<Uuid> {
    connection["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| id(&edge["node"]["id"]))
        .collect()
}

/// Two warehouses, A and B: two items and an allocation in each.
pub struct Story {
    pub a: Uuid,
    pub b: Uuid,
    pub a1: Uuid,
    pub a2: Uuid,
    pub b1: Uuid,
    pub alloc_a: Uuid,
    pub alloc_b: Uuid,
}

pub async fn story(app: &App) -> Story {
    let a = app.warehouse("A").await;
    let b = app.warehouse("B").await;
    let a1 = app.item(a, "A-1").await;
    let b1 = app.item(b, "B-1").await;
    let a2 = app.item(a, "A-2").await;
    let _b2 = app.item(b, "B-2").await;
    let alloc_a = app.allocation(a1, "ORD-A").await;
    let alloc_b = app.allocation(b1, "ORD-B").await;
    app.projected(4, 2).await;
    Story {
        a,
        b,
        a1,
        a2,
        b1,
        alloc_a,
        alloc_b,
    }
}
