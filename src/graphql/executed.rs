//! Whether a request got as far as execution. GraphQL over HTTP answers a request that failed
//! to parse or validate with 400 under `application/graphql-response+json`, and an executed one
//! with 200 whatever its errors; async-graphql's response alone cannot tell the two apart, so
//! this extension flags the `Executed` the HTTP layer put into the request's data.

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
use async_graphql::Response;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Put one into a request's data (`Request::data`); read it after the request ran.
#[derive(Clone, Default)]
pub struct Executed(Arc<AtomicBool>);

impl Executed {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

pub struct MarkExecuted;

impl ExtensionFactory for MarkExecuted {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(MarkExecuted)
    }
}

#[async_trait::async_trait]
impl Extension for MarkExecuted {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        if let Some(executed) = ctx.data_opt::<Executed>() {
            executed.0.store(true, Ordering::Relaxed);
        }
        next.run(ctx, operation_name).await
    }
}
