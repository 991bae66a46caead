//! Depth and cost limits, with introspection counted on its own. The standard introspection
//! query every tool sends (graphql-js `getIntrospectionQuery`) nests `ofType` far deeper than any
//! real query needs, so one depth limit for both either refuses GraphiQL or lets hostile queries
//! through. Here the `__schema`/`__type` subtrees are exempt from the ordinary limits and bound by
//! their own (depth and field count); everything else keeps `MAX_DEPTH` and `MAX_COMPLEXITY`.
//! Fragments are measured once each (memoised), so fragment fan-out cannot make the check itself
//! expensive; the same limits apply over HTTP and WebSocket.

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, ValidationResult, Variables};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Deepest ordinary query accepted; the deepest useful one (item → warehouse inside a
/// connection) is well under it.
pub const MAX_DEPTH: usize = 12;
/// Cost ceiling of the ordinary part of a query (async-graphql counts one per field, times list
/// sizes where declared).
pub const MAX_COMPLEXITY: usize = 5_000;
/// Deepest introspection subtree, counted from `__schema`/`__type`: the standard query reaches
/// 13 (`__schema` → types → fields → args → type → 7 × ofType → name).
pub const MAX_INTROSPECTION_DEPTH: usize = 15;
/// Most fields in introspection subtrees, fragments expanded: the standard query with every
/// option has about 200.
pub const MAX_INTROSPECTION_FIELDS: usize = 1_000;

/// The measurements of one document, fragments expanded.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Deepest path outside introspection subtrees.
    pub depth: usize,
    /// Deepest introspection subtree, counting its root field.
    pub introspection_depth: usize,
    /// Fields inside introspection subtrees (saturating).
    pub introspection_fields: usize,
}

/// Measures every operation of a document. Unknown or cyclic fragments count as empty; the
/// validation that follows refuses them.
pub fn measure(document: &ExecutableDocument) -> Shape {
    let mut walker = Walker {
        document,
        full: HashMap::new(),
        ordinary: HashMap::new(),
    };
    let mut shape = Shape::default();
    for (_, operation) in document.operations.iter() {
        let part = walker.ordinary(&operation.node.selection_set.node, true);
        shape.depth = shape.depth.max(part.depth);
        shape.introspection_depth = shape.introspection_depth.max(part.introspection_depth);
        shape.introspection_fields = shape
            .introspection_fields
            .saturating_add(part.introspection_fields);
    }
    shape
}

/// (depth, field count) of a selection set, fragments expanded.
#[derive(Debug, Default, Clone, Copy)]
struct Size {
    depth: usize,
    fields: usize,
}

struct Walker<'a> {
    document: &'a ExecutableDocument,
    /// Memo of `full` per fragment; `None` while a fragment is being measured (a cycle).
    full: HashMap<&'a str, Option<Size>>,
    /// Memo of `ordinary` per (fragment, spread at the operation's root).
    ordinary: HashMap<(&'a str, bool), Option<Shape>>,
}

impl<'a> Walker<'a> {
    /// Everything in a selection set counts (used inside introspection).
    fn full(&mut self, set: &'a SelectionSet) -> Size {
        let mut size = Size::default();
        for selection in &set.items {
            let part = match &selection.node {
                Selection::Field(field) => {
                    let inner = self.full(&field.node.selection_set.node);
                    // async-graphql's cost leaves `__typename` out; so does this count, which
                    // is taken away from that cost.
                    let own = usize::from(field.node.name.node != "__typename");
                    Size {
                        depth: inner.depth + 1,
                        fields: inner.fields.saturating_add(own),
                    }
                }
                Selection::InlineFragment(inline) => self.full(&inline.node.selection_set.node),
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    match self.document.fragments.get_key_value(name) {
                        Some((key, fragment)) => match self.full.get(key.as_str()) {
                            Some(Some(size)) => *size,
                            Some(None) => Size::default(),
                            None => {
                                self.full.insert(key.as_str(), None);
                                let size = self.full(&fragment.node.selection_set.node);
                                self.full.insert(key.as_str(), Some(size));
                                size
                            }
                        },
                        None => Size::default(),
                    }
                }
            };
            size.depth = size.depth.max(part.depth);
            size.fields = size.fields.saturating_add(part.fields);
        }
        size
    }

    /// Ordinary depth of a selection set; `__schema` and `__type` (only valid on the root
    /// query type, so only looked for at the root) open an introspection subtree instead.
    fn ordinary(&mut self, set: &'a SelectionSet, root: bool) -> Shape {
        let mut shape = Shape::default();
        for selection in &set.items {
            let part = match &selection.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    if root && (name == "__schema" || name == "__type") {
                        let inner = self.full(&field.node.selection_set.node);
                        Shape {
                            depth: 1,
                            introspection_depth: inner.depth + 1,
                            introspection_fields: inner.fields.saturating_add(1),
                        }
                    } else {
                        let inner = self.ordinary(&field.node.selection_set.node, false);
                        Shape {
                            depth: inner.depth + 1,
                            ..inner
                        }
                    }
                }
                Selection::InlineFragment(inline) => {
                    self.ordinary(&inline.node.selection_set.node, root)
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    match self.document.fragments.get_key_value(name) {
                        Some((key, fragment)) => match self.ordinary.get(&(key.as_str(), root)) {
                            Some(Some(shape)) => *shape,
                            Some(None) => Shape::default(),
                            None => {
                                self.ordinary.insert((key.as_str(), root), None);
                                let shape = self.ordinary(&fragment.node.selection_set.node, root);
                                self.ordinary.insert((key.as_str(), root), Some(shape));
                                shape
                            }
                        },
                        None => Shape::default(),
                    }
                }
            };
            shape.depth = shape.depth.max(part.depth);
            shape.introspection_depth = shape.introspection_depth.max(part.introspection_depth);
            shape.introspection_fields = shape
                .introspection_fields
                .saturating_add(part.introspection_fields);
        }
        shape
    }
}

/// Refuses a document whose shape passes a limit, with the message async-graphql's own limits
/// use for the ordinary ones.
pub fn check(shape: &Shape) -> ServerResult<()> {
    let refuse = |message: String| Err(ServerError::new(message, None));
    if shape.depth > MAX_DEPTH {
        return refuse(format!(
            "Query is nested too deep (more than {MAX_DEPTH} levels)."
        ));
    }
    if shape.introspection_depth > MAX_INTROSPECTION_DEPTH {
        return refuse(format!(
            "Introspection is nested too deep (more than {MAX_INTROSPECTION_DEPTH} levels)."
        ));
    }
    if shape.introspection_fields > MAX_INTROSPECTION_FIELDS {
        return refuse(format!(
            "Introspection selects too many fields (more than {MAX_INTROSPECTION_FIELDS})."
        ));
    }
    Ok(())
}

/// The extension the schema is built with, in place of async-graphql's `limit_depth` and
/// `limit_complexity` (which would count introspection with everything else).
pub struct QueryLimits;

impl ExtensionFactory for QueryLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(QueryLimitsOf::default())
    }
}

/// One request's check: the parse step measures the document, the validation step takes the
/// introspection fields out of async-graphql's complexity before comparing it with the ceiling.
#[derive(Default)]
struct QueryLimitsOf {
    introspection_fields: AtomicUsize,
}

#[async_trait::async_trait]
impl Extension for QueryLimitsOf {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let shape = measure(&document);
        check(&shape)?;
        self.introspection_fields
            .store(shape.introspection_fields, Ordering::Relaxed);
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        // async-graphql counts one per introspection field (they declare no cost), as
        // `measure` does.
        let ordinary = result
            .complexity
            .saturating_sub(self.introspection_fields.load(Ordering::Relaxed));
        if ordinary > MAX_COMPLEXITY {
            return Err(vec![ServerError::new(
                format!("Query is too complex (cost {ordinary}, at most {MAX_COMPLEXITY})."),
                None,
            )]);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(query: &str) -> Shape {
        measure(&async_graphql::parser::parse_query(query).expect("valid query"))
    }

    #[test]
    fn introspection_is_measured_apart_from_the_rest() {
        let s = shape("{ a { b { c } } __schema { types { fields { name } } } }");
        assert_eq!(
            s,
            Shape {
                depth: 3,
                introspection_depth: 4,
                introspection_fields: 4
            }
        );
    }

    #[test]
    fn fragments_count_where_they_are_spread() {
        let s = shape(
            "query { ...Root } fragment Root on Query { a { ...Deep } __type(name: \"X\") { ...T } }
             fragment Deep on A { b { c } } fragment T on __Type { ofType { ofType { name } } }",
        );
        assert_eq!(s.depth, 3);
        assert_eq!(s.introspection_depth, 4);
        assert_eq!(s.introspection_fields, 4);
    }

    #[test]
    fn a_field_named_like_introspection_below_the_root_counts_as_ordinary() {
        let s = shape("{ a { __schema { b { c } } } }");
        assert_eq!(s.depth, 4);
        assert_eq!(s.introspection_depth, 0);
    }

    #[test]
    fn fragment_fan_out_is_measured_without_expanding_it() {
        // 2^40 fields once expanded; measured in 40 steps, with the count saturating.
        let mut query = String::from("{ __schema { ...F0 } } ");
        for i in 0..40 {
            query.push_str(&format!(
                "fragment F{i} on __Schema {{ ...F{n} ...F{n} }} ",
                n = i + 1
            ));
        }
        query.push_str("fragment F40 on __Schema { description }");
        let s = shape(&query);
        assert!(s.introspection_fields > MAX_INTROSPECTION_FIELDS, "{s:?}");
        assert!(check(&s).is_err());
    }

    #[test]
    fn cyclic_fragments_do_not_hang_the_measure() {
        let s = shape("{ a { ...A } } fragment A on X { b { ...B } } fragment B on X { ...A }");
        assert_eq!(s.depth, 2);
    }
}
