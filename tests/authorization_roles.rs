//! Authorization by role: every root query is refused without credentials and answered for a
//! viewer, every root mutation needs its role (and a refused one stores nothing), and `viewer`
//! reports the principal. The principals: anonymous without a role, viewer, operator, admin.
//! Harness: `authz`.

mod authz;
mod common;

use authz::{admin, code, known, nobody, start, story};
use inventory_service::auth::{Principal, Role};
use inventory_service::graphql::roles::{Root, ROOT_FIELDS};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use uuid::Uuid;

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
