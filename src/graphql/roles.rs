//! The role each root field needs. Every field of Query, Mutation and Subscription carries a
//! `RoleGuard`, which runs before the resolver (so a refused mutation changes nothing) and
//! refuses with UNAUTHENTICATED (no credentials) or FORBIDDEN (a role too low). `ROOT_FIELDS`
//! is the one table of field → role; the tests below walk the schema and fail on a root field
//! missing from it, on a guard that disagrees with it and on a description that does not name
//! the role. Introspection (`__schema`, `__type`, `__typename`) has no guard: GraphiQL and
//! codegen work for everyone, anonymous callers included.

use async_graphql::{Context, Guard};

use crate::auth::Role;

/// Lets a root field run only for `role` or a higher one:
/// `#[graphql(guard = "RoleGuard(Role::Viewer)")]`.
pub struct RoleGuard(pub Role);

impl Guard for RoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        crate::auth::require(ctx, self.0).map(|_| ())
    }
}

/// Which root type a field belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Root {
    Query,
    Mutation,
    Subscription,
}

impl Root {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "Query",
            Self::Mutation => "Mutation",
            Self::Subscription => "Subscription",
        }
    }
}

use Role::{Admin, Operator, Viewer};
use Root::{Mutation, Query, Subscription};

/// Every root field and the least role it needs (the README's roles table says the same).
pub const ROOT_FIELDS: &[(Root, &str, Role)] = &[
    (Query, "node", Viewer),
    (Query, "nodes", Viewer),
    (Query, "warehouse", Viewer),
    (Query, "warehouses", Viewer),
    (Query, "inventoryItem", Viewer),
    (Query, "inventoryItemBySku", Viewer),
    (Query, "inventoryItems", Viewer),
    (Query, "inventoryHistory", Viewer),
    (Query, "stockMovementReport", Viewer),
    (Query, "allocation", Viewer),
    (Query, "allocations", Viewer),
    (Query, "transfer", Viewer),
    (Query, "transfers", Viewer),
    (Query, "inventoryItemAsOf", Viewer),
    (Query, "allocationAsOf", Viewer),
    (Query, "warehouseAsOf", Viewer),
    (Query, "events", Viewer),
    (Query, "projectionRebuild", Viewer),
    (Query, "projectionGenerations", Viewer),
    (Query, "viewer", Viewer),
    (Query, "serviceStatus", Viewer),
    (Mutation, "warehouseCreate", Admin),
    (Mutation, "warehouseUpdate", Admin),
    (Mutation, "warehouseDeactivate", Admin),
    (Mutation, "inventoryItemCreate", Operator),
    (Mutation, "inventoryAdjust", Operator),
    (Mutation, "inventoryItemUpdateReorderSettings", Operator),
    (Mutation, "inventoryItemDeactivate", Admin),
    (Mutation, "inventorySetOnHand", Operator),
    (Mutation, "inventoryBulkAdjust", Operator),
    (Mutation, "allocationCreate", Operator),
    (Mutation, "allocationConfirm", Operator),
    (Mutation, "allocationCancel", Operator),
    (Mutation, "allocationFulfill", Operator),
    (Mutation, "transferCreate", Operator),
    (Mutation, "transferShip", Operator),
    (Mutation, "transferReceive", Operator),
    (Mutation, "transferCancel", Operator),
    (Mutation, "projectionRebuildStart", Admin),
    (Subscription, "lowStockAlerts", Viewer),
    (Subscription, "inventoryEvents", Viewer),
    (Subscription, "inventoryItemChanged", Viewer),
    (Subscription, "allocationChanged", Viewer),
];

/// The role the table gives a root field; `None` for one it does not list.
pub fn required(root: Root, field: &str) -> Option<Role> {
    ROOT_FIELDS
        .iter()
        .find(|(r, f, _)| *r == root && *f == field)
        .map(|(_, _, role)| *role)
}

/// The sentence each root field's description carries.
pub fn needs(role: Role) -> String {
    format!("Needs the `{role}` role.")
}

#[cfg(test)]
mod tests {
    //! Run on the schema without an application (`schema(None)`): a field that passes its
    //! guard then fails for want of the application's data, which tells a pass from a refusal
    //! without touching any store.

    use super::*;
    use crate::auth::{Kind, Principal, Scope};
    use crate::graphql::{schema, RequestMeta};
    use async_graphql::{Request, Response};
    use futures::StreamExt;
    use serde_json::Value;

    const INTROSPECTION: &str = "{ __schema { types { name kind \
        fields { name description args { name type { ...T } } type { ...T } } \
        inputFields { name type { ...T } } enumValues { name } } } }
        fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }";

    async fn introspect() -> Value {
        let response = schema(None).execute(INTROSPECTION).await;
        assert!(response.errors.is_empty(), "{:?}", response.errors);
        response.data.into_json().expect("json")["__schema"]["types"].clone()
    }

    fn root_fields(types: &Value, root: Root) -> Vec<Value> {
        types
            .as_array()
            .expect("types")
            .iter()
            .find(|t| t["name"] == root.as_str())
            .map(|t| t["fields"].as_array().expect("fields").clone())
            .unwrap_or_default()
    }

    fn every_root_field(types: &Value) -> Vec<(Root, Value)> {
        [Query, Mutation, Subscription]
            .into_iter()
            .flat_map(|root| root_fields(types, root).into_iter().map(move |f| (root, f)))
            .collect()
    }

    #[tokio::test]
    async fn every_root_field_has_a_role_in_the_table_and_says_so() {
        let types = introspect().await;
        let fields = every_root_field(&types);
        for (root, field) in &fields {
            let name = field["name"].as_str().expect("name");
            let Some(role) = required(*root, name) else {
                panic!(
                    "{}.{name} has no role in graphql::roles::ROOT_FIELDS: add it there and \
                     give the field a RoleGuard",
                    root.as_str()
                );
            };
            let description = field["description"].as_str().unwrap_or_default();
            assert!(
                description.contains(&needs(role)),
                "{}.{name}'s description must say {:?}: {description:?}",
                root.as_str(),
                needs(role)
            );
        }
        for (root, name, _) in ROOT_FIELDS {
            assert!(
                fields.iter().any(|(r, f)| r == root && f["name"] == *name),
                "ROOT_FIELDS lists {}.{name}, which the schema does not have",
                root.as_str()
            );
        }
    }

    /// The named type under NON_NULL and LIST wrappers.
    fn named(type_ref: &Value) -> &Value {
        match type_ref["kind"].as_str() {
            Some("NON_NULL") | Some("LIST") => named(&type_ref["ofType"]),
            _ => type_ref,
        }
    }

    /// A value of a type that passes validation: every required field of an input filled in,
    /// lists empty, ids a valid UUID. Resolvers never see it (the guard refuses, or the
    /// missing application fails), only argument parsing does.
    fn sample(types: &Value, type_ref: &Value) -> String {
        match type_ref["kind"].as_str() {
            Some("NON_NULL") => sample(types, &type_ref["ofType"]),
            Some("LIST") => "[]".to_owned(),
            Some("ENUM") | Some("INPUT_OBJECT") | Some("SCALAR") => {
                let name = type_ref["name"].as_str().expect("named");
                let full = types
                    .as_array()
                    .expect("types")
                    .iter()
                    .find(|t| t["name"] == name)
                    .expect("type");
                match type_ref["kind"].as_str() {
                    Some("ENUM") => full["enumValues"][0]["name"]
                        .as_str()
                        .expect("value")
                        .to_owned(),
                    Some("INPUT_OBJECT") => {
                        let fields: Vec<String> = full["inputFields"]
                            .as_array()
                            .expect("input fields")
                            .iter()
                            .filter(|f| f["type"]["kind"] == "NON_NULL")
                            .map(|f| {
                                format!(
                                    "{}: {}",
                                    f["name"].as_str().unwrap(),
                                    sample(types, &f["type"])
                                )
                            })
                            .collect();
                        format!("{{ {} }}", fields.join(", "))
                    }
                    _ => match name {
                        "Int" => "1".to_owned(),
                        "Float" => "1.5".to_owned(),
                        "Boolean" => "false".to_owned(),
                        "DateTime" => "\"2026-01-01T00:00:00Z\"".to_owned(),
                        "NaiveDate" | "Date" => "\"2026-01-01\"".to_owned(),
                        _ => format!("\"{}\"", uuid::Uuid::nil()),
                    },
                }
            }
            other => panic!("no sample for {other:?}"),
        }
    }

    /// An operation calling just this root field with its required arguments.
    fn operation(types: &Value, root: Root, field: &Value) -> String {
        let args: Vec<String> = field["args"]
            .as_array()
            .expect("args")
            .iter()
            .filter(|a| a["type"]["kind"] == "NON_NULL")
            .map(|a| {
                format!(
                    "{}: {}",
                    a["name"].as_str().unwrap(),
                    sample(types, &a["type"])
                )
            })
            .collect();
        let args = if args.is_empty() {
            String::new()
        } else {
            format!("({})", args.join(", "))
        };
        let selection = match named(&field["type"])["kind"].as_str() {
            Some("OBJECT") | Some("INTERFACE") | Some("UNION") => " { __typename }",
            _ => "",
        };
        let keyword = match root {
            Query => "query",
            Mutation => "mutation",
            Subscription => "subscription",
        };
        format!(
            "{keyword} {{ {}{args}{selection} }}",
            field["name"].as_str().unwrap()
        )
    }

    fn as_principal(operation: &str, principal: Principal) -> Request {
        Request::new(operation).data(RequestMeta {
            principal,
            actor: "test".into(),
            correlation_id: "test".into(),
        })
    }

    async fn run(root: Root, operation: &str, principal: Principal) -> Response {
        let schema = schema(None);
        let request = as_principal(operation, principal);
        if root == Subscription {
            let mut stream = schema.execute_stream(request);
            stream.next().await.expect("a first response")
        } else {
            schema.execute(request).await
        }
    }

    fn code(response: &Response) -> Option<String> {
        let error = response.errors.first()?;
        let code = error.extensions.as_ref()?.get("code")?;
        Some(code.clone().into_json().ok()?.as_str()?.to_owned())
    }

    fn known(role: Role) -> Principal {
        Principal {
            name: format!("a-{role}"),
            role: Some(role),
            scope: Scope::All,
            kind: Kind::ApiKey,
            acts_for_others: false,
        }
    }

    /// Root fields that answer from the request alone (the principal, this process's
    /// gauges), so past their guard they succeed even without an application.
    const WITHOUT_APPLICATION: &[&str] = &["viewer", "serviceStatus"];

    /// Every root field, as every kind of caller: refused exactly when the table says so, with
    /// the code that tells the caller what to do; let through (to fail later for want of the
    /// application) otherwise. This is what catches a field whose guard is missing or wrong.
    #[tokio::test]
    async fn every_root_field_is_guarded_as_the_table_says() {
        let types = introspect().await;
        for (root, field) in every_root_field(&types) {
            let name = field["name"].as_str().expect("name").to_owned();
            let role = required(root, &name).expect("listed (see the test above)");
            let operation = operation(&types, root, &field);
            let response = run(root, &operation, Principal::anonymous(None)).await;
            assert_eq!(
                code(&response).as_deref(),
                Some("UNAUTHENTICATED"),
                "{operation} without credentials: {:?}",
                response.errors
            );
            for have in [Viewer, Operator, Admin] {
                let response = run(root, &operation, known(have)).await;
                let refused = code(&response).as_deref() == Some("FORBIDDEN");
                assert_eq!(
                    refused,
                    have < role,
                    "{operation} as {have} (needs {role}): {:?}",
                    response.errors
                );
                if have >= role && WITHOUT_APPLICATION.contains(&name.as_str()) {
                    assert!(
                        response.errors.is_empty(),
                        "{operation} as {have} needs no application and should answer: {:?}",
                        response.errors
                    );
                } else if have >= role {
                    assert!(
                        !response.errors.is_empty()
                            && code(&response).as_deref() != Some("UNAUTHENTICATED"),
                        "{operation} as {have} got past its guard and failed for want of the \
                         application: {:?}",
                        response.errors
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn introspection_is_open_to_anonymous_callers_without_a_role() {
        let response = schema(None)
            .execute(as_principal(
                "{ __typename __schema { queryType { name } } __type(name: \"Query\") { name } }",
                Principal::anonymous(None),
            ))
            .await;
        assert!(response.errors.is_empty(), "{:?}", response.errors);
        let data = response.data.into_json().expect("json");
        assert_eq!(data["__typename"], "Query");
        assert_eq!(data["__type"]["name"], "Query");
    }
}
