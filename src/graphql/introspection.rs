//! Makes introspection tell the truth about the schema's description. async-graphql answers
//! `__schema { description }` with a fixed sentence describing what a schema is, which is not
//! this schema's description: clients that rebuild the schema from introspection (graphql-js
//! `buildClientSchema`, codegen) would print it as one, and differ from schema.graphql. The
//! answer is this schema's own description, which `super::sdl` prints too.

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
            return Ok(Some(Value::String(super::SCHEMA_DESCRIPTION.to_owned())));
        }
        next.run(ctx, info).await
    }
}
