//! Authorization in the GraphQL layer: roles on every root field and warehouse scoping of
//! reads and subscriptions. Driven through the library (the schema over a temporary SQLite
//! store, `Service::start`), each request run as the principal the HTTP and WebSocket edge
//! puts into `RequestMeta`, since the edge does not authenticate yet. The principals: anonymous
//! without a role, viewer, operator, admin, an operator scoped to another warehouse, viewers
//! scoped to one warehouse and to two.

use async_graphql::{Request, Response, Variables};
use futures::{Stream, StreamExt};
use inventory_service::app::Service;
use inventory_service::auth::{Kind, Principal, Role, Scope};
use inventory_service::config::{StorageConfig, StoreKind};
use inventory_service::graphql::roles::{Root, ROOT_FIELDS};
use inventory_service::graphql::{schema, InventorySchema, RequestMeta};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use uuid::Uuid;

struct App {
    service: Service,
    schema: InventorySchema,
    _dir: tempfile::TempDir,
}

/// The service on a temporary SQLite store, or on DynamoDB with `INVENTORY_TEST_BACKEND=dynamodb`
/// (and `INVENTORY_TEST_DYNAMODB_ENDPOINT`), each test on tables of its own.
async fn start() -> App {
    let dir = tempfile::tempdir().expect("temp dir");
    let dynamodb = std::env::var("INVENTORY_TEST_BACKEND").as_deref() == Ok("dynamodb");
    let config = StorageConfig {
        store: if dynamodb {
            StoreKind::Dynamodb
        } else {
            StoreKind::Sqlite
        },
        data_dir: dir.path().to_owned(),
        dynamodb_endpoint: dynamodb.then(|| {
            std::env::var("INVENTORY_TEST_DYNAMODB_ENDPOINT")
                .expect("INVENTORY_TEST_DYNAMODB_ENDPOINT names the endpoint")
        }),
        table_prefix: format!("authz{}_", Uuid::now_v7().simple()),
        migrate: dynamodb,
        dynamodb_report_capacity: false,
        outbox_shards: 4,
        snapshot_every: 100,
    };
    let service = Service::start(&config).await.expect("start");
    let schema = schema(Some(service.context.clone()));
    App {
        service,
        schema,
        _dir: dir,
    }
}

fn known(name: &str, role: Role, warehouses: &[Uuid]) -> Principal {
    Principal {
        name: name.to_owned(),
        role: Some(role),
        scope: Scope::of(warehouses.iter().copied()),
        kind: Kind::ApiKey,
        acts_for_others: false,
    }
}

fn nobody() -> Principal {
    Principal::anonymous(None)
}

fn admin() -> Principal {
    known("admin", Role::Admin, &[])
}

fn request(principal: &Principal, query: &str, variables: Value) -> Request {
    Request::new(query)
        .variables(Variables::from_json(variables))
        .data(RequestMeta {
            principal: principal.clone(),
            actor: principal.name.clone(),
            correlation_id: Uuid::now_v7().to_string(),
        })
}

impl App {
    async fn run(&self, principal: &Principal, query: &str, variables: Value) -> Response {
        self.schema
            .execute(request(principal, query, variables))
            .await
    }

    /// The data of a request that must succeed.
    async fn data(&self, principal: &Principal, query: &str, variables: Value) -> Value {
        let response = self.run(principal, query, variables).await;
        assert!(
            response.errors.is_empty(),
            "{query} as {}: {:?}",
            principal.name,
            response.errors
        );
        response.data.into_json().expect("json")
    }

    async fn events_stored(&self) -> u64 {
        self.service
            .context
            .store
            .count_events()
            .await
            .expect("count")
    }

    async fn warehouse(&self, code: &str) -> Uuid {
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
    async fn item(&self, warehouse: Uuid, sku: &str) -> Uuid {
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

    async fn allocation(&self, item: Uuid, order: &str) -> Uuid {
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
    async fn transfer(&self, item: Uuid, warehouse: Uuid) -> Uuid {
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

    async fn adjust(&self, item: Uuid, delta: i64) {
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
    async fn projected(&self, items: usize, allocations: usize) {
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

fn id(value: &Value) -> Uuid {
    Uuid::parse_str(value.as_str().unwrap_or_else(|| panic!("an id: {value}"))).expect("uuid")
}

fn code(response: &Response) -> Option<String> {
    let error = response.errors.first()?;
    let code = error.extensions.as_ref()?.get("code")?;
    Some(code.clone().into_json().ok()?.as_str()?.to_owned())
}

fn ids(connection: &Value) -> Vec<Uuid> {
    connection["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| id(&edge["node"]["id"]))
        .collect()
}

/// Two warehouses, A and B: two items and an allocation in each.
struct Story {
    a: Uuid,
    b: Uuid,
    a1: Uuid,
    a2: Uuid,
    b1: Uuid,
    alloc_a: Uuid,
    alloc_b: Uuid,
}

async fn story(app: &App) -> Story {
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

/// One query per root query field, on the story's entities (`item`, `warehouse`, `allocation`
/// are ids the caller is asked about).
fn queries() -> Vec<(&'static str, &'static str)> {
    vec![
        ("node", "query($item: ID!) { node(id: $item) { id } }"),
        ("nodes", "query($item: ID!, $warehouse: ID!) { nodes(ids: [$item, $warehouse]) { id } }"),
        ("warehouse", "query($warehouse: ID!) { warehouse(id: $warehouse) { id } }"),
        ("warehouses", "{ warehouses { totalCount edges { node { id } } } }"),
        ("inventoryItem", "query($item: ID!) { inventoryItem(id: $item) { id warehouse { id } } }"),
        (
            "inventoryItemBySku",
            "query($warehouse: ID!) { inventoryItemBySku(warehouseId: $warehouse, sku: \"A-1\") { id } }",
        ),
        ("inventoryItems", "{ inventoryItems { totalCount edges { node { id } } } }"),
        ("inventoryHistory", "query($item: ID!) { inventoryHistory(itemId: $item) { totalCount } }"),
        (
            "stockMovementReport",
            "query($warehouse: ID!) { stockMovementReport(warehouseId: $warehouse) { totals { net } } }",
        ),
        ("allocation", "query($allocation: ID!) { allocation(id: $allocation) { id item { id } } }"),
        ("allocations", "{ allocations { totalCount edges { node { id } } } }"),
        ("transfer", "query($transfer: ID!) { transfer(id: $transfer) { id } }"),
        ("transfers", "{ transfers { totalCount edges { node { id } } } }"),
        (
            "inventoryItemAsOf",
            "query($item: ID!) { inventoryItemAsOf(id: $item, version: 1) { id } }",
        ),
        (
            "allocationAsOf",
            "query($allocation: ID!) { allocationAsOf(id: $allocation, version: 1) { id } }",
        ),
        (
            "warehouseAsOf",
            "query($warehouse: ID!) { warehouseAsOf(id: $warehouse, version: 1) { id } }",
        ),
        ("events", "query($item: ID!) { events(aggregateId: $item) { totalCount } }"),
        ("projectionRebuild", "{ projectionRebuild { generation } }"),
        ("projectionGenerations", "{ projectionGenerations { generation } }"),
        ("viewer", "{ viewer { name role anonymous warehouseIds } }"),
        ("serviceStatus", "{ serviceStatus { outboxDepth } }"),
    ]
}

fn fields_of(root: Root) -> BTreeSet<&'static str> {
    ROOT_FIELDS
        .iter()
        .filter(|(r, _, _)| *r == root)
        .map(|(_, field, _)| *field)
        .collect()
}

#[tokio::test]
async fn every_query_is_refused_without_credentials_and_answered_for_a_viewer() {
    let app = start().await;
    let s = story(&app).await;
    let queries = queries();
    assert_eq!(
        queries
            .iter()
            .map(|(field, _)| *field)
            .collect::<BTreeSet<_>>(),
        fields_of(Root::Query),
        "one query here per root query field"
    );
    let transfer = app.transfer(s.a1, s.b).await;
    let variables = json!({ "item": s.a1, "warehouse": s.a, "allocation": s.alloc_a,
        "transfer": transfer });
    let viewer = known("viewer", Role::Viewer, &[]);
    for (field, query) in &queries {
        let refused = app.run(&nobody(), query, variables.clone()).await;
        assert_eq!(
            code(&refused).as_deref(),
            Some("UNAUTHENTICATED"),
            "{field} without credentials: {:?}",
            refused.errors
        );
        assert_eq!(refused.data, async_graphql::Value::Null, "{field}: no data");
        let data = app.data(&viewer, query, variables.clone()).await;
        if *field != "projectionRebuild" {
            assert_ne!(data[field], Value::Null, "{field} as a viewer: {data}");
        }
    }
    // Introspection stays open, for GraphiQL and codegen.
    let data = app
        .data(
            &nobody(),
            "{ __typename __schema { queryType { name } } __type(name: \"Mutation\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(data["__schema"]["queryType"]["name"], "Query");
    app.service.stop().await;
}

/// One mutation per root mutation field, each of which a permitted caller may run again
/// (a retry meets only user errors).
fn mutations() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "warehouseCreate",
            "mutation($code: String!) { warehouseCreate(input: { name: \"New\", code: $code }) { userErrors { code } } }",
        ),
        (
            "warehouseUpdate",
            "mutation($warehouse: ID!) { warehouseUpdate(input: { id: $warehouse, name: \"Renamed\" }) { userErrors { code } } }",
        ),
        (
            "warehouseDeactivate",
            "mutation($spare: ID!) { warehouseDeactivate(input: { id: $spare, reason: \"closed\" }) { userErrors { code } } }",
        ),
        (
            "inventoryItemCreate",
            "mutation($warehouse: ID!, $code: String!) { inventoryItemCreate(input: { warehouseId: $warehouse, sku: $code, productId: \"P\" }) { userErrors { code } } }",
        ),
        (
            "inventoryAdjust",
            "mutation($item: ID!) { inventoryAdjust(input: { itemId: $item, delta: 1, reason: RECEIVED }) { userErrors { code } } }",
        ),
        (
            "inventorySetOnHand",
            "mutation($item: ID!) { inventorySetOnHand(input: { itemId: $item, quantity: 1000, reason: CYCLE_COUNT }) { userErrors { code } } }",
        ),
        (
            "inventoryBulkAdjust",
            "mutation($item: ID!) { inventoryBulkAdjust(input: { adjustments: [{ itemId: $item, delta: 1, reason: RECEIVED }], errorPolicy: REJECT_EVERYTHING }) { userErrors { code } } }",
        ),
        (
            "inventoryItemUpdateReorderSettings",
            "mutation($item: ID!) { inventoryItemUpdateReorderSettings(input: { itemId: $item, reorderQuantity: 7 }) { userErrors { code } } }",
        ),
        (
            "inventoryItemDeactivate",
            "mutation($spareItem: ID!) { inventoryItemDeactivate(input: { itemId: $spareItem, reason: \"gone\" }) { userErrors { code } } }",
        ),
        (
            "allocationCreate",
            "mutation($item: ID!) { allocationCreate(input: { orderId: \"ORD-9\", itemId: $item, quantity: 1 }) { userErrors { code } } }",
        ),
        (
            "allocationConfirm",
            "mutation($allocation: ID!) { allocationConfirm(input: { id: $allocation }) { userErrors { code } } }",
        ),
        (
            "allocationFulfill",
            "mutation($allocation: ID!) { allocationFulfill(input: { id: $allocation }) { userErrors { code } } }",
        ),
        (
            "allocationCancel",
            "mutation($other: ID!) { allocationCancel(input: { id: $other, reason: \"changed\" }) { userErrors { code } } }",
        ),
        (
            "transferCreate",
            "mutation($item: ID!, $elsewhere: ID!) { transferCreate(input: { fromItemId: $item, toWarehouseId: $elsewhere, quantity: 1 }) { userErrors { code } } }",
        ),
        // On a transfer that does not exist: the role is checked first, then NOT_FOUND.
        (
            "transferShip",
            "mutation($other: ID!) { transferShip(input: { id: $other }) { userErrors { code } } }",
        ),
        (
            "transferReceive",
            "mutation($other: ID!) { transferReceive(input: { id: $other, quantityReceived: 1 }) { userErrors { code } } }",
        ),
        (
            "transferCancel",
            "mutation($other: ID!) { transferCancel(input: { id: $other, reason: \"r\" }) { userErrors { code } } }",
        ),
        (
            "projectionRebuildStart",
            "mutation { projectionRebuildStart(input: { projections: [] }) { userErrors { code } } }",
        ),
    ]
}

#[tokio::test]
async fn mutations_need_their_role_and_a_refused_one_changes_nothing() {
    let app = start().await;
    let s = story(&app).await;
    let spare = app.warehouse("SPARE").await;
    let spare_item = app.item(s.a, "SPARE-1").await;
    let mutations = mutations();
    assert_eq!(
        mutations
            .iter()
            .map(|(field, _)| *field)
            .collect::<BTreeSet<_>>(),
        fields_of(Root::Mutation),
        "one mutation here per root mutation field"
    );
    let callers = [
        (nobody(), None),
        (known("viewer", Role::Viewer, &[]), Some(Role::Viewer)),
        (known("operator", Role::Operator, &[]), Some(Role::Operator)),
        (admin(), Some(Role::Admin)),
    ];
    let mut n = 0;
    for (caller, role) in &callers {
        for (field, mutation) in &mutations {
            let needed = ROOT_FIELDS
                .iter()
                .find(|(root, f, _)| *root == Root::Mutation && f == field)
                .map(|(_, _, role)| *role)
                .expect("listed");
            n += 1;
            let variables = json!({
                "code": format!("C{n}"), "warehouse": s.a, "spare": spare, "item": s.a1,
                "spareItem": spare_item, "allocation": s.alloc_a, "other": s.alloc_b,
                "elsewhere": spare,
            });
            let before = app.events_stored().await;
            let response = app.run(caller, mutation, variables).await;
            match role {
                Some(role) if *role >= needed => assert!(
                    response.errors.is_empty(),
                    "{field} as {}: {:?}",
                    caller.name,
                    response.errors
                ),
                _ => {
                    let expected = if role.is_none() {
                        "UNAUTHENTICATED"
                    } else {
                        "FORBIDDEN"
                    };
                    assert_eq!(
                        code(&response).as_deref(),
                        Some(expected),
                        "{field} as {} (needs {needed}): {:?}",
                        caller.name,
                        response.errors
                    );
                    assert_eq!(response.data, async_graphql::Value::Null);
                    assert_eq!(
                        app.events_stored().await,
                        before,
                        "a refused {field} stored nothing"
                    );
                }
            }
        }
    }
    // What the permitted ones did is there: the operator's adjustment and the admin's rename.
    let data = app
        .data(
            &admin(),
            "query($w: ID!) { warehouse(id: $w) { name } }",
            json!({ "w": s.a }),
        )
        .await;
    assert_eq!(data["warehouse"]["name"], "Renamed");
    app.service.stop().await;
}

#[tokio::test]
async fn a_scoped_viewer_reads_nothing_outside_its_warehouse() {
    let app = start().await;
    let s = story(&app).await;
    let viewer = known("viewer-a", Role::Viewer, &[s.a]);

    // Lists hold only A's rows, and count only them.
    let data = app
        .data(
            &viewer,
            "{ inventoryItems { totalCount edges { node { id warehouseId warehouse { id } } } } \
               warehouses { totalCount edges { node { id } } } \
               allocations { totalCount edges { node { id item { id } warehouse { id } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(ids(&data["inventoryItems"]), vec![s.a1, s.a2]);
    assert_eq!(data["inventoryItems"]["totalCount"], 2);
    assert_eq!(ids(&data["warehouses"]), vec![s.a]);
    assert_eq!(data["warehouses"]["totalCount"], 1);
    assert_eq!(ids(&data["allocations"]), vec![s.alloc_a]);
    assert_eq!(data["allocations"]["totalCount"], 1);

    // Pages walk only A's items, both ways.
    let data = app
        .data(
            &viewer,
            "{ inventoryItems(first: 1) { edges { node { id } } pageInfo { hasNextPage endCursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(ids(&data["inventoryItems"]), vec![s.a1]);
    let cursor = data["inventoryItems"]["pageInfo"]["endCursor"].clone();
    let data = app
        .data(
            &viewer,
            "query($after: String) { inventoryItems(first: 1, after: $after) { edges { node { id } } pageInfo { hasNextPage } } }",
            json!({ "after": cursor }),
        )
        .await;
    assert_eq!(ids(&data["inventoryItems"]), vec![s.a2]);
    assert_eq!(data["inventoryItems"]["pageInfo"]["hasNextPage"], false);
    let data = app
        .data(
            &viewer,
            "{ inventoryItems(last: 5) { edges { node { id } } pageInfo { hasPreviousPage } } }",
            json!({}),
        )
        .await;
    assert_eq!(ids(&data["inventoryItems"]), vec![s.a1, s.a2]);

    // Relay refetch answers null for B's objects.
    let data = app
        .data(
            &viewer,
            "query($a: ID!, $b: ID!, $w: ID!) { node(id: $b) { id } nodes(ids: [$a, $b, $w]) { id } }",
            json!({ "a": s.a1, "b": s.b1, "w": s.b }),
        )
        .await;
    assert_eq!(data["node"], Value::Null);
    assert_eq!(
        data["nodes"],
        json!([{ "id": s.a1.to_string() }, null, null])
    );

    // Everything naming B or what lies in it is FORBIDDEN, and says nothing more.
    let refused = [
        ("query($b: ID!) { inventoryItem(id: $b) { id } }", s.b1),
        ("query($b: ID!) { warehouse(id: $b) { id } }", s.b),
        ("query($b: ID!) { allocation(id: $b) { id } }", s.alloc_b),
        (
            "query($b: ID!) { inventoryItemBySku(warehouseId: $b, sku: \"B-1\") { id } }",
            s.b,
        ),
        (
            "query($b: ID!) { inventoryItems(warehouseId: $b) { totalCount } }",
            s.b,
        ),
        (
            "query($b: ID!) { allocations(itemId: $b) { totalCount } }",
            s.b1,
        ),
        (
            "query($b: ID!) { allocations(warehouseId: $b) { totalCount } }",
            s.b,
        ),
        (
            "query($b: ID!) { inventoryHistory(itemId: $b) { totalCount } }",
            s.b1,
        ),
        (
            "query($b: ID!) { stockMovementReport(warehouseId: $b) { totals { net } } }",
            s.b,
        ),
        (
            "query($b: ID!) { stockMovementReport(itemId: $b) { totals { net } } }",
            s.b1,
        ),
        (
            "query($b: ID!) { events(aggregateId: $b) { totalCount } }",
            s.b1,
        ),
        (
            "query($b: ID!) { events(aggregateId: $b) { totalCount } }",
            s.b,
        ),
        (
            "query($b: ID!) { events(aggregateId: $b) { totalCount } }",
            s.alloc_b,
        ),
        (
            "query($b: ID!) { inventoryItemAsOf(id: $b, version: 1) { id } }",
            s.b1,
        ),
        (
            "query($b: ID!) { allocationAsOf(id: $b, version: 1) { id } }",
            s.alloc_b,
        ),
        (
            "query($b: ID!) { warehouseAsOf(id: $b, version: 1) { id } }",
            s.b,
        ),
        // Nothing stored under this id: a scoped caller reads only what is known to be its own.
        (
            "query($b: ID!) { events(aggregateId: $b) { totalCount } }",
            Uuid::now_v7(),
        ),
    ];
    for (query, id) in refused {
        let response = app.run(&viewer, query, json!({ "b": id })).await;
        assert_eq!(
            code(&response).as_deref(),
            Some("FORBIDDEN"),
            "{query} for {id}: {:?}",
            response.errors
        );
        let data = response.data.into_json().expect("json");
        assert!(
            data.as_object()
                .is_none_or(|o| o.values().all(Value::is_null)),
            "{query}: {data}"
        );
    }

    // The same questions about A are answered.
    let data = app
        .data(
            &viewer,
            "query($a: ID!, $w: ID!, $al: ID!) { inventoryItem(id: $a) { id } \
             inventoryHistory(itemId: $a) { totalCount } events(aggregateId: $al) { totalCount } \
             allocations(itemId: $a) { totalCount } inventoryItemAsOf(id: $a, version: 1) { id } \
             stockMovementReport(warehouseId: $w) { rows { warehouseId } } }",
            json!({ "a": s.a1, "w": s.a, "al": s.alloc_a }),
        )
        .await;
    assert_eq!(id(&data["inventoryItem"]["id"]), s.a1);
    assert_eq!(data["allocations"]["totalCount"], 1);
    assert_eq!(data["events"]["totalCount"], 1);
    assert!(data["inventoryHistory"]["totalCount"].as_u64() >= Some(1));

    // An operator scoped to B reads B's and is refused A's alike.
    let operator = known("operator-b", Role::Operator, &[s.b]);
    let data = app
        .data(
            &operator,
            "{ inventoryItems { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert!(ids(&data["inventoryItems"])
        .iter()
        .all(|i| *i != s.a1 && *i != s.a2));
    assert!(ids(&data["inventoryItems"]).contains(&s.b1));
    let response = app
        .run(
            &operator,
            "query($a: ID!) { inventoryItem(id: $a) { id } }",
            json!({ "a": s.a1 }),
        )
        .await;
    assert_eq!(code(&response).as_deref(), Some("FORBIDDEN"));
    app.service.stop().await;
}

/// A principal with several warehouses lists them all, merged in creation order, with exact
/// pages and counts.
#[tokio::test]
async fn a_viewer_of_two_warehouses_pages_through_both() {
    let app = start().await;
    let a = app.warehouse("A").await;
    let b = app.warehouse("B").await;
    let c = app.warehouse("C").await;
    let mut mine = Vec::new();
    for n in 0..4 {
        mine.push(app.item(a, &format!("A-{n}")).await);
        app.item(b, &format!("B-{n}")).await;
        mine.push(app.item(c, &format!("C-{n}")).await);
    }
    app.allocation(mine[0], "ORD-1").await;
    app.allocation(mine[1], "ORD-1").await;
    app.projected(12, 2).await;
    let viewer = known("viewer-ac", Role::Viewer, &[a, c]);

    let mut forward = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = app
            .data(
                &viewer,
                "query($after: String) { inventoryItems(first: 3, after: $after) { totalCount \
                 edges { node { id } } pageInfo { hasNextPage endCursor } } }",
                json!({ "after": after }),
            )
            .await;
        let page = &data["inventoryItems"];
        assert_eq!(page["totalCount"], 8);
        forward.extend(ids(page));
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(forward, mine);

    let mut backward = Vec::new();
    let mut before = Value::Null;
    loop {
        let data = app
            .data(
                &viewer,
                "query($before: String) { inventoryItems(last: 3, before: $before) { \
                 edges { node { id } } pageInfo { hasPreviousPage startCursor } } }",
                json!({ "before": before }),
            )
            .await;
        let page = &data["inventoryItems"];
        let mut rows = ids(page);
        rows.extend(backward);
        backward = rows;
        if page["pageInfo"]["hasPreviousPage"] == false {
            break;
        }
        before = page["pageInfo"]["startCursor"].clone();
    }
    assert_eq!(backward, mine);

    let data = app
        .data(
            &viewer,
            "{ warehouses { totalCount edges { node { id } } } \
               allocations(orderId: \"ORD-1\") { totalCount } }",
            json!({}),
        )
        .await;
    let mut both = vec![a, c];
    both.sort();
    assert_eq!(ids(&data["warehouses"]), both);
    assert_eq!(data["warehouses"]["totalCount"], 2);
    assert_eq!(data["allocations"]["totalCount"], 2);
    app.service.stop().await;
}

/// Starts a subscription and waits until it listens (its resolver runs on the first poll).
async fn subscribe(
    app: &App,
    principal: &Principal,
    query: &str,
    variables: Value,
) -> impl Stream<Item = Response> + Unpin {
    let mut stream = Box::pin(
        app.schema
            .execute_stream(request(principal, query, variables)),
    );
    if let Ok(first) = tokio::time::timeout(Duration::from_millis(300), stream.next()).await {
        panic!("{query}: a response before anything happened: {first:?}");
    }
    stream
}

/// Reads a feed until a message of `field` satisfies `wanted`; every one up to it must lie in
/// `warehouse` (by `warehouse_of`). Earlier changes may still be on their way, so the wanted
/// message need not be the first, but nothing outside the warehouse may come before it.
async fn until(
    stream: &mut (impl Stream<Item = Response> + Unpin),
    field: &str,
    warehouse: Uuid,
    warehouse_of: fn(&Value) -> Uuid,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    loop {
        let response = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream is open");
        assert!(response.errors.is_empty(), "{:?}", response.errors);
        let message = response.data.into_json().expect("json")[field].clone();
        assert_eq!(warehouse_of(&message), warehouse, "{field}: {message}");
        if wanted(&message) {
            return message;
        }
    }
}

#[tokio::test]
async fn a_scoped_viewer_hears_only_of_its_warehouse() {
    let app = start().await;
    let s = story(&app).await;
    let viewer = known("viewer-a", Role::Viewer, &[s.a]);

    let mut alerts = subscribe(
        &app,
        &viewer,
        "subscription { lowStockAlerts { itemId warehouseId } }",
        json!({}),
    )
    .await;
    let mut items = subscribe(
        &app,
        &viewer,
        "subscription { inventoryItemChanged { id warehouseId } }",
        json!({}),
    )
    .await;
    let mut events = subscribe(
        &app,
        &viewer,
        "subscription($a: ID!) { inventoryEvents(aggregateId: $a) { aggregateId eventType } }",
        json!({ "a": s.a2 }),
    )
    .await;
    // B's item runs low first, then A's: A's is the first (and only) alert the viewer gets.
    app.adjust(s.b1, -15).await;
    app.adjust(s.a2, -15).await;
    let a2 = s.a2;
    until(
        &mut alerts,
        "lowStockAlerts",
        s.a,
        |m| id(&m["warehouseId"]),
        |m| id(&m["itemId"]) == a2,
    )
    .await;
    until(
        &mut items,
        "inventoryItemChanged",
        s.a,
        |m| id(&m["warehouseId"]),
        |m| id(&m["id"]) == a2,
    )
    .await;
    let event = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event")
        .expect("open");
    let event = event.data.into_json().expect("json");
    assert_eq!(id(&event["inventoryEvents"]["aggregateId"]), s.a2);

    // Naming B, or no aggregate at all for raw events, is refused when subscribing.
    for (query, variables) in [
        (
            "subscription($b: ID!) { lowStockAlerts(warehouseId: $b) { itemId } }",
            json!({ "b": s.b }),
        ),
        (
            "subscription($b: ID!) { inventoryItemChanged(warehouseId: $b) { id } }",
            json!({ "b": s.b }),
        ),
        (
            "subscription($b: ID!) { inventoryItemChanged(itemId: $b) { id } }",
            json!({ "b": s.b1 }),
        ),
        (
            "subscription($b: ID!) { inventoryEvents(aggregateId: $b) { eventType } }",
            json!({ "b": s.b1 }),
        ),
        ("subscription { inventoryEvents { eventType } }", json!({})),
        (
            "subscription { inventoryEvents(aggregateType: INVENTORY_ITEM) { eventType } }",
            json!({}),
        ),
    ] {
        let mut stream = app
            .schema
            .execute_stream(request(&viewer, query, variables));
        let response = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("an answer")
            .expect("a response");
        assert_eq!(
            code(&response).as_deref(),
            Some("FORBIDDEN"),
            "{query}: {:?}",
            response.errors
        );
    }

    // Allocation changes: B's is never heard of, A's is.
    let mut allocations = subscribe(
        &app,
        &viewer,
        "subscription { allocationChanged { id warehouse { id } } }",
        json!({}),
    )
    .await;
    let confirm =
        "mutation($id: ID!) { allocationConfirm(input: { id: $id }) { userErrors { code } } }";
    app.data(&admin(), confirm, json!({ "id": s.alloc_b }))
        .await;
    app.data(&admin(), confirm, json!({ "id": s.alloc_a }))
        .await;
    let alloc_a = s.alloc_a;
    until(
        &mut allocations,
        "allocationChanged",
        s.a,
        |m| id(&m["warehouse"]["id"]),
        |m| id(&m["id"]) == alloc_a,
    )
    .await;
    app.service.stop().await;
}

/// `viewer` tells each caller what the edge made of it: its name, its role, whether it is
/// anonymous, and the warehouses it is limited to (null for all), so a client can hide what
/// its principal may not do.
#[tokio::test]
async fn viewer_reports_the_principal_its_role_and_its_warehouses() {
    let app = start().await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let query = "{ viewer { name role anonymous warehouseIds } }";
    let scoped = app
        .data(&known("clerk", Role::Operator, &[a, b]), query, json!({}))
        .await;
    let mut expected = [a.to_string(), b.to_string()];
    expected.sort();
    assert_eq!(
        scoped["viewer"],
        json!({ "name": "clerk", "role": "OPERATOR", "anonymous": false, "warehouseIds": expected })
    );
    let everywhere = app
        .data(&known("auditor", Role::Viewer, &[]), query, json!({}))
        .await;
    assert_eq!(everywhere["viewer"]["role"], "VIEWER");
    assert_eq!(everywhere["viewer"]["warehouseIds"], Value::Null);
    let anonymous = app
        .data(&Principal::anonymous(Some(Role::Admin)), query, json!({}))
        .await;
    assert_eq!(
        anonymous["viewer"],
        json!({ "name": "anonymous", "role": "ADMIN", "anonymous": true, "warehouseIds": null })
    );
    app.service.stop().await;
}
