//! What one request may cost, checked before it costs it: the query's length, depth, a cost
//! that multiplies page sizes and weighs replays at their price, batches, and the size of the
//! answer. A document is measured right after parsing with fragments memoised (`shape`), so
//! fragment fan-out is refused before anything expands it; validation then prices the fields
//! the schema declares (`complexity` attributes calling the functions here). Introspection
//! (`__schema`/`__type` subtrees) has bounds of its own, so GraphiQL's standard query passes.
//! The limits come from the request's [`Allowance`] (HTTP and WebSocket attach one), else the
//! defaults.

mod allowance;
mod shape;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextPrepareRequest, NextSubscribe,
    NextValidation,
};
use async_graphql::{Request, Response, ServerError, ServerResult, ValidationResult};
use futures::stream::{BoxStream, StreamExt};
use std::any::TypeId;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

pub use allowance::Allowance;
pub use shape::{measure, Shape};

/// Deepest ordinary query accepted by default; the deepest useful one (item → warehouse inside
/// a connection) is well under it.
pub const MAX_DEPTH: usize = 12;
/// Default cost ceiling of one operation (see [`page`] and the weights below): a full page of
/// 500 rows with seven fields each and its `pageInfo` (priced per row too) is within it; at
/// about 350 bytes of memory per unit while a response is built, a query holds a few MB.
pub const MAX_COMPLEXITY: usize = 10_000;
/// Deepest introspection subtree, counted from `__schema`/`__type`: the standard query reaches
/// 13 (`__schema` → types → fields → args → type → 7 × ofType → name).
pub const MAX_INTROSPECTION_DEPTH: usize = 15;
/// Most fields in introspection subtrees, fragments expanded: the standard query with every
/// option has about 200.
pub const MAX_INTROSPECTION_FIELDS: usize = 1_000;
/// Default longest query document, in bytes: the standard introspection query is under 3 KiB
/// and a dashboard's largest a few KiB; longer ones are refused before they are parsed (the
/// parser's work and its syntax tree grow with the text).
pub const MAX_QUERY_BYTES: usize = 64 * 1024;
/// Default number of operations one batch (a JSON array of requests) may hold.
pub const MAX_BATCH_OPERATIONS: usize = 10;
/// Default cost of a whole batch: the same as one operation's, so batching multiplies nothing.
pub const MAX_BATCH_COMPLEXITY: usize = MAX_COMPLEXITY;
/// Default largest answer, in bytes of JSON: a full page of 500 events with their data is
/// well under it.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// What rebuilding an entity from its events (`*AsOf`) costs: a replay of 5,000 events holds
/// about 4.5 MB while it runs, what 1,000 units of a page take, so a query holds at most nine.
pub const REPLAY_COST: usize = 1_000;
/// What a catch-up subscription (`afterSequence`) costs on top of its fields: it reads the
/// aggregate's backlog from the store before going live, as a replay does.
pub const CATCH_UP_COST: usize = 1_000;
/// Rows a stock movement report is priced at (it is not paged: one row per item per day).
pub const REPORT_ROWS: usize = 100;
/// Highest cost one field is priced at, so sums over a bounded number of fields never
/// overflow; anything near it is far over every limit anyway.
const COST_CAP: usize = u32::MAX as usize;

/// The limits one request is held to (`--max-query-cost` and the others, `config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_query_bytes: usize,
    pub max_batch_operations: usize,
    pub max_batch_complexity: usize,
    pub max_response_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: MAX_DEPTH,
            max_complexity: MAX_COMPLEXITY,
            max_query_bytes: MAX_QUERY_BYTES,
            max_batch_operations: MAX_BATCH_OPERATIONS,
            max_batch_complexity: MAX_BATCH_COMPLEXITY,
            max_response_bytes: MAX_RESPONSE_BYTES,
        }
    }
}

/// The `extensions.code` of each refusal.
pub mod code {
    pub const QUERY_TOO_LARGE: &str = "QUERY_TOO_LARGE";
    pub const QUERY_TOO_DEEP: &str = "QUERY_TOO_DEEP";
    pub const QUERY_TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";
    pub const BATCH_TOO_LARGE: &str = "BATCH_TOO_LARGE";
    pub const BATCH_TOO_COMPLEX: &str = "BATCH_TOO_COMPLEX";
    pub const RESPONSE_TOO_LARGE: &str = "RESPONSE_TOO_LARGE";
}

/// A refusal as a request error with a stable code.
pub fn refusal(code: &'static str, message: String) -> ServerError {
    let mut error = ServerError::new(message, None);
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
    error
}

/// The cost of a connection field: itself, plus its selection once per row of the page it
/// asks for (`first` or `last`, 50 when neither is given, at most 500 as the resolver allows).
pub fn page(first: Option<i32>, last: Option<i32>, child_complexity: usize) -> usize {
    let asked = match (first, last) {
        (None, None) => crate::graphql::DEFAULT_PAGE,
        (first, last) => first.unwrap_or(0).max(last.unwrap_or(0)),
    };
    let rows = asked.clamp(1, crate::graphql::MAX_PAGE) as usize;
    list(rows, child_complexity)
}

/// The cost of a field answering `rows` objects: itself, plus its selection once per row.
pub fn list(rows: usize, child_complexity: usize) -> usize {
    rows.saturating_mul(child_complexity)
        .saturating_add(1)
        .min(COST_CAP)
}

/// The cost of a field that rebuilds an entity from its events.
pub fn replay(child_complexity: usize) -> usize {
    weighted(REPLAY_COST, child_complexity)
}

/// The cost of an event subscription: a catch-up (`afterSequence`) reads the store first.
pub fn catch_up(after_sequence: Option<u64>, child_complexity: usize) -> usize {
    let own = if after_sequence.is_some() {
        CATCH_UP_COST
    } else {
        1
    };
    weighted(own, child_complexity)
}

fn weighted(own: usize, child_complexity: usize) -> usize {
    own.saturating_add(child_complexity).min(COST_CAP)
}

/// Refuses a document whose measure passes a limit, before validation expands anything.
pub fn check(shape: &Shape, limits: &Limits) -> ServerResult<()> {
    if shape.depth > limits.max_depth {
        return Err(refusal(
            code::QUERY_TOO_DEEP,
            format!(
                "Query is nested too deep (more than {} levels).",
                limits.max_depth
            ),
        ));
    }
    if shape.introspection_depth > MAX_INTROSPECTION_DEPTH {
        return Err(refusal(
            code::QUERY_TOO_DEEP,
            format!(
                "Introspection is nested too deep (more than {MAX_INTROSPECTION_DEPTH} levels)."
            ),
        ));
    }
    if shape.introspection_fields > MAX_INTROSPECTION_FIELDS {
        return Err(refusal(
            code::QUERY_TOO_COMPLEX,
            format!(
                "Introspection selects too many fields (more than {MAX_INTROSPECTION_FIELDS})."
            ),
        ));
    }
    // Every field costs at least 1, so the field count alone can already be over; a spread
    // costs nothing but a walk, and more spreads than the cost limit serve no real query.
    if shape.fields > limits.max_complexity || shape.spreads > limits.max_complexity {
        return Err(too_complex(shape.fields.max(shape.spreads), limits));
    }
    Ok(())
}

fn too_complex(cost: usize, limits: &Limits) -> ServerError {
    let shown = if cost >= COST_CAP {
        "too many".to_owned()
    } else {
        cost.to_string()
    };
    refusal(
        code::QUERY_TOO_COMPLEX,
        format!(
            "Query is too complex (cost {shown}, at most {}); ask for smaller pages or fewer fields.",
            limits.max_complexity
        ),
    )
}

/// The extension the schema is built with, in place of async-graphql's `limit_depth` and
/// `limit_complexity` (which would count introspection with everything else, leave
/// `__typename` out and expand fragments before counting).
pub struct QueryLimits;

impl ExtensionFactory for QueryLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(QueryLimitsOf::default())
    }
}

/// One request's check: preparing the request refuses a long text, then parses and measures
/// the document and takes the request's allowance; validation prices it; an answer (or a
/// subscription event) too large is replaced by an error.
struct QueryLimitsOf {
    allowance: OnceLock<Arc<Allowance>>,
    shape: OnceLock<Shape>,
    /// The size one subscription event may have (read by the event stream, which outlives
    /// the hooks' borrows).
    event_bytes: Arc<AtomicUsize>,
    /// Set when the operation was a query or mutation, answered once through `execute`.
    executed: Arc<AtomicBool>,
}

impl Default for QueryLimitsOf {
    fn default() -> Self {
        Self {
            allowance: OnceLock::new(),
            shape: OnceLock::new(),
            event_bytes: Arc::new(AtomicUsize::new(MAX_RESPONSE_BYTES)),
            executed: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl QueryLimitsOf {
    fn allowance(&self) -> &Arc<Allowance> {
        self.allowance
            .get_or_init(|| Allowance::single(Limits::default()))
    }
}

#[async_trait::async_trait]
impl Extension for QueryLimitsOf {
    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let (cap, executed) = (self.event_bytes.clone(), self.executed.clone());
        let stream = stream
            .map(move |response| {
                if executed.load(Ordering::Relaxed) {
                    // Measured in `execute` already.
                    response
                } else {
                    allowance::cut(response, cap.load(Ordering::Relaxed))
                }
            })
            .boxed();
        next.run(ctx, stream)
    }

    /// Parses and measures the document before async-graphql's own parse step, whose
    /// recursion check follows every fragment spread as often as it is spread.
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let mut request = next.run(ctx, request).await?;
        // The request's data is not the context's yet (it becomes so after this hook).
        let given = request
            .data
            .get(&TypeId::of::<Arc<Allowance>>())
            .and_then(|data| data.downcast_ref::<Arc<Allowance>>());
        if let Some(allowance) = given {
            let _ = self.allowance.set(allowance.clone());
        }
        let allowance = self.allowance();
        let limits = allowance.limits();
        self.event_bytes
            .store(limits.max_response_bytes, Ordering::Relaxed);
        if request.query.len() > limits.max_query_bytes {
            return Err(refusal(
                code::QUERY_TOO_LARGE,
                format!(
                    "The query is longer than {} bytes; send a shorter one (variables for \
                     large inputs).",
                    limits.max_query_bytes
                ),
            ));
        }
        // Parsed once: async-graphql takes the parsed document from the request.
        let shape = measure(request.parsed_query()?);
        check(&shape, limits)?;
        allowance.afford(shape.fields)?;
        let _ = self.shape.set(shape);
        Ok(request)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        let shape = self.shape.get().copied().unwrap_or_default();
        // async-graphql prices introspection fields at 1 each except `__typename`, which it
        // leaves out everywhere: take the former away, add the latter back.
        let introspection = shape
            .introspection_fields
            .saturating_sub(shape.introspection_typenames);
        let cost = result
            .complexity
            .saturating_sub(introspection)
            .saturating_add(shape.typenames);
        let allowance = self.allowance();
        if cost > allowance.limits().max_complexity {
            return Err(vec![too_complex(cost, allowance.limits())]);
        }
        allowance.spend(cost).map_err(|e| vec![e])?;
        Ok(result)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        self.executed.store(true, Ordering::Relaxed);
        let response = next.run(ctx, operation_name).await;
        self.allowance().fit(response)
    }
}
