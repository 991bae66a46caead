//! Makes introspection tell the truth about the schema's description. async-graphql answers
//! `__schema { description }` with a fixed sentence describing what a schema is, which is not
//! this schema's description: clients that rebuild the schema from introspection (graphql-js
//! `buildClientSchema`, codegen) would print it as one, and differ from schema.graphql. This
//! schema has no description, so the answer is null, as the GraphQL spec's `String` allows.

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo,
};
use async_graphql::{ServerResult, Value};
use std::sync::Arc;

pub struct SchemaDescription;

impl ExtensionFactory for SchemaDescription {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(SchemaDescription)
    }
}

#[async_trait::async_trait]
impl Extension for SchemaDescription {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if info.is_for_introspection && info.parent_type == "__Schema" && info.name == "description"
        {
            return Ok(Some(Value::Null));
        }
        next.run(ctx, info).await
    }
}
