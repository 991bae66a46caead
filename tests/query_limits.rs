//! The depth and cost limits on the real schema: the standard introspection query every tool
//! sends passes, hostile queries do not, and introspection is bounded by limits of its own
//! rather than exempt from limits. The price of a field: page sizes multiply (literals and
//! variables), `__typename` counts, replays and catch-ups weigh 1,000, a bulk adjustment its
//! selection once per row.

use async_graphql::Request;
use inventory_service::graphql::limits::{
    Allowance, Limits, MAX_COMPLEXITY, MAX_DEPTH, MAX_INTROSPECTION_DEPTH, MAX_INTROSPECTION_FIELDS,
};

/// graphql-js `getIntrospectionQuery` with every option on, as GraphiQL sends it.
const STANDARD_INTROSPECTION: &str = include_str!("fixtures/introspection_query.graphql");

async fn errors(query: &str) -> Vec<String> {
    let schema = inventory_service::graphql::schema(None);
    let response = schema.execute(Request::new(query)).await;
    response.errors.into_iter().map(|e| e.message).collect()
}

/// `errors` for a query far longer than any client's: it is allowed a longer text than the
/// default, so that only its depth and cost are measured.
async fn long_errors(query: &str) -> Vec<String> {
    let schema = inventory_service::graphql::schema(None);
    let long = Allowance::single(Limits {
        max_query_bytes: 1 << 20,
        ..Limits::default()
    });
    let response = schema.execute(Request::new(query).data(long)).await;
    response.errors.into_iter().map(|e| e.message).collect()
}

/// `a { a { … __typename } }`, `depth` fields deep.
fn chain(name: &str, depth: usize) -> String {
    let mut query = String::from("__typename");
    for _ in 1..depth {
        query = format!("{name} {{ {query} }}");
    }
    query
}

fn nested(name: &str, depth: usize) -> String {
    format!("{{ {} }}", chain(name, depth))
}

/// `ofType { … name }` chains under `__type(name: "Query") { fields { type { … } } }`, so the
/// whole introspection subtree is `depth` fields deep.
fn introspection_of_depth(depth: usize) -> String {
    let mut inner = String::from("name");
    for _ in 0..depth - 4 {
        inner = format!("ofType {{ {inner} }}");
    }
    format!("{{ __type(name: \"Query\") {{ fields {{ type {{ {inner} }} }} }} }}")
}

#[tokio::test]
async fn the_standard_introspection_query_passes() {
    let schema = inventory_service::graphql::schema(None);
    let response = schema.execute(Request::new(STANDARD_INTROSPECTION)).await;
    assert!(response.errors.is_empty(), "{:?}", response.errors);
    let data = response.data.into_json().expect("json");
    let types = data["__schema"]["types"].as_array().map_or(0, Vec::len);
    assert!(types > 40, "only {types} types introspected");
    assert_eq!(data["__schema"]["queryType"]["name"], "Query");
}

#[tokio::test]
async fn a_deeply_nested_ordinary_query_is_still_refused() {
    // Refused for its depth before validation looks at its (unknown) fields.
    let errors = errors(&nested("item", MAX_DEPTH + 1)).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("nested too deep"), "{errors:?}");
    // At the limit it is validation that answers.
    let errors = self::errors(&nested("item", MAX_DEPTH)).await;
    assert!(errors.iter().all(|e| !e.contains("too deep")), "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("Unknown field")),
        "{errors:?}"
    );
}

#[tokio::test]
async fn introspection_deeper_than_its_own_bound_is_refused() {
    let at_bound = errors(&introspection_of_depth(MAX_INTROSPECTION_DEPTH)).await;
    assert!(at_bound.is_empty(), "{at_bound:?}");
    let deeper = errors(&introspection_of_depth(MAX_INTROSPECTION_DEPTH + 1)).await;
    assert_eq!(deeper.len(), 1, "{deeper:?}");
    assert!(
        deeper[0].contains("Introspection is nested too deep"),
        "{deeper:?}"
    );
}

#[tokio::test]
async fn introspection_below_the_root_is_ordinary_depth() {
    // `__schema` is only introspection at the root; nested, it counts as ordinary (and is
    // then refused by validation anyway).
    let query = format!("{{ a {{ __schema {{ {} }} }} }}", chain("b", MAX_DEPTH - 1));
    let errors = errors(&query).await;
    assert!(errors[0].contains("Query is nested too deep"), "{errors:?}");
}

#[tokio::test]
async fn introspection_fan_out_through_fragments_is_refused() {
    // Each fragment spreads the next twice: 2^20 fields once expanded.
    let mut query = String::from("{ __schema { ...F0 } } ");
    for i in 0..20 {
        query.push_str(&format!(
            "fragment F{i} on __Schema {{ ...F{n} ...F{n} }} ",
            n = i + 1
        ));
    }
    query.push_str("fragment F20 on __Schema { description }");
    let errors = errors(&query).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(&format!("more than {MAX_INTROSPECTION_FIELDS}")),
        "{errors:?}"
    );
}

#[tokio::test]
async fn cost_counts_ordinary_fields_and_not_introspection() {
    // Each alias costs 3: the connection, plus its selection (pageInfo, hasNextPage) once per
    // row of a page of 1.
    let fields = |cost: usize| {
        (0..cost / 3)
            .map(|i| format!("f{i}: inventoryItems(first: 1) {{ pageInfo {{ hasNextPage }} }}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    // The whole ordinary budget beside the standard introspection query is within the
    // limits (the resolvers then fail: this schema has no store behind it)...
    let body = STANDARD_INTROSPECTION
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let with_budget = body.replacen(
        "__schema {",
        &format!("{} __schema {{", fields(MAX_COMPLEXITY)),
        1,
    );
    let errors = long_errors(&with_budget).await;
    assert!(!errors.is_empty(), "the resolvers ran");
    assert!(
        errors
            .iter()
            .all(|e| !e.contains("too complex") && !e.contains("Unknown")),
        "{:?}",
        &errors[..1]
    );
    // ...one alias more is over it.
    let errors = long_errors(&format!("{{ {} }}", fields(MAX_COMPLEXITY + 3))).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("too complex"), "{errors:?}");
}

/// The `extensions.code` of each error of a request held to `max_complexity`.
async fn codes_at(max_complexity: usize, query: &str, variables: serde_json::Value) -> Vec<String> {
    let schema = inventory_service::graphql::schema(None);
    let allowance = Allowance::single(Limits {
        max_complexity,
        ..Limits::default()
    });
    let request = Request::new(query)
        .variables(async_graphql::Variables::from_json(variables))
        .data(allowance);
    let response = schema.execute(request).await;
    response
        .errors
        .iter()
        .map(|e| {
            e.extensions
                .as_ref()
                .and_then(|x| x.get("code"))
                .map_or_else(String::new, |c| c.to_string().trim_matches('"').to_owned())
        })
        .collect()
}

fn too_complex(codes: &[String]) -> bool {
    codes == ["QUERY_TOO_COMPLEX"]
}

#[tokio::test]
async fn typename_costs_like_any_field() {
    // 1 + 2 × (edges, cursor) = 5, and `__typename` one more (async-graphql's own count
    // leaves it out).
    let none = serde_json::json!({});
    let page = "inventoryItems(first: 2) { edges { cursor } }";
    assert!(!too_complex(
        &codes_at(5, &format!("{{ {page} }}"), none.clone()).await
    ));
    let with_typename = format!("{{ {page} __typename }}");
    assert!(too_complex(
        &codes_at(5, &with_typename, none.clone()).await
    ));
    assert!(!too_complex(&codes_at(6, &with_typename, none).await));
}

#[tokio::test]
async fn page_sizes_given_as_variables_are_priced() {
    // 1 + n × (edges, cursor).
    let query = "query($n: Int) { inventoryItems(first: $n) { edges { cursor } } }";
    let at = |n: i32| serde_json::json!({ "n": n });
    assert!(!too_complex(&codes_at(1_000, query, at(499)).await));
    assert!(too_complex(&codes_at(1_000, query, at(500)).await));
    // Past the largest page the resolver refuses it; it is priced as the largest.
    assert!(too_complex(&codes_at(1_000, query, at(1_000_000)).await));
    let last = "query($n: Int) { inventoryItems(last: $n) { edges { cursor } } }";
    assert!(too_complex(&codes_at(1_000, last, at(500)).await));
    // No size: the default page of 50.
    let default = "{ inventoryItems { edges { cursor } } }";
    assert!(!too_complex(
        &codes_at(101, default, serde_json::json!({})).await
    ));
    assert!(too_complex(
        &codes_at(100, default, serde_json::json!({})).await
    ));
}

#[tokio::test]
async fn a_bulk_adjustment_is_priced_per_row() {
    // 1 + rows × (results, index), its rows given as a variable.
    let query = "mutation($rows: [InventoryBulkAdjustRowInput!]!) {
        inventoryBulkAdjust(input: {adjustments: $rows}) { results { index } } }";
    let rows = |n: usize| {
        let row = serde_json::json!({ "itemId": "x", "delta": 1, "reason": "RECEIVED" });
        serde_json::json!({ "rows": vec![row; n] })
    };
    assert!(!too_complex(&codes_at(201, query, rows(100)).await));
    assert!(too_complex(&codes_at(200, query, rows(100)).await));
    // Past the largest bulk the resolver refuses it; it is priced as the largest.
    assert!(too_complex(&codes_at(500, query, rows(1_000)).await));
}

#[tokio::test]
async fn nodes_are_priced_per_id() {
    let ids = |n: usize| {
        let all: Vec<String> = (0..n).map(|i| format!("\"{i}\"")).collect();
        format!("{{ nodes(ids: [{}]) {{ id }} }}", all.join(", "))
    };
    let none = serde_json::json!({});
    assert!(!too_complex(&codes_at(11, &ids(10), none.clone()).await));
    assert!(too_complex(&codes_at(11, &ids(11), none).await));
}

#[tokio::test]
async fn replays_and_catch_up_subscriptions_weigh_a_thousand() {
    let none = serde_json::json!({});
    let replay = "{ inventoryItemAsOf(id: \"x\", version: 1) { onHand } }";
    assert!(!too_complex(&codes_at(1_001, replay, none.clone()).await));
    assert!(too_complex(&codes_at(1_000, replay, none.clone()).await));
    let live = "subscription { inventoryEvents(aggregateId: \"x\") { eventType } }";
    assert!(!too_complex(&codes_at(2, live, none.clone()).await));
    let catch_up =
        "subscription { inventoryEvents(aggregateId: \"x\", afterSequence: 0) { eventType } }";
    assert!(!too_complex(&codes_at(1_001, catch_up, none.clone()).await));
    assert!(too_complex(&codes_at(1_000, catch_up, none).await));
}
