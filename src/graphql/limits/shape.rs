//! What a document measures before validation looks at it: depth, fields and `__typename`s,
//! with introspection (`__schema`/`__type` subtrees) counted apart. Fragments are measured once
//! each (memoised) and counts saturate, so a document whose fragments spread each other twice
//! over (2^n fields once expanded) is measured in n steps and refused before anything expands
//! it. Knows nothing of the schema's types: field costs come later, from validation.

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use std::collections::HashMap;

/// The measurements of one document, fragments expanded (every operation in it).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Deepest path outside introspection subtrees.
    pub depth: usize,
    /// Fields outside introspection subtrees, `__typename` included (saturating): each costs
    /// at least 1, so this is a floor of the document's cost.
    pub fields: usize,
    /// Of those, `__typename` (which async-graphql's own cost leaves out).
    pub typenames: usize,
    /// Deepest introspection subtree, counting its root field.
    pub introspection_depth: usize,
    /// Fields inside introspection subtrees, `__typename` included (saturating).
    pub introspection_fields: usize,
    /// Of those, `__typename`.
    pub introspection_typenames: usize,
    /// Fragment spreads, each counted where it is expanded (saturating), known fragments or
    /// not: what async-graphql's own checks walk before and during validation.
    pub spreads: usize,
}

impl Shape {
    /// Folds a sibling selection's shape into this one.
    fn add(&mut self, part: Shape) {
        self.depth = self.depth.max(part.depth);
        self.introspection_depth = self.introspection_depth.max(part.introspection_depth);
        self.fields = self.fields.saturating_add(part.fields);
        self.typenames = self.typenames.saturating_add(part.typenames);
        self.introspection_fields = self
            .introspection_fields
            .saturating_add(part.introspection_fields);
        self.introspection_typenames = self
            .introspection_typenames
            .saturating_add(part.introspection_typenames);
        self.spreads = self.spreads.saturating_add(part.spreads);
    }
}

/// Measures every operation of a document. Unknown or cyclic fragments count as empty; the
/// validation that follows refuses them.
pub fn measure(document: &ExecutableDocument) -> Shape {
    let mut walker = Walker {
        document,
        memo: HashMap::new(),
    };
    let mut shape = Shape::default();
    for (_, operation) in document.operations.iter() {
        shape.add(walker.walk(&operation.node.selection_set.node, Place::Root));
    }
    shape
}

/// Where a selection set stands: `__schema` and `__type` are only valid on the root query
/// type, so they open an introspection subtree only there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Place {
    Root,
    Ordinary,
    Introspection,
}

struct Walker<'a> {
    document: &'a ExecutableDocument,
    /// Each fragment's shape where it is spread; `None` while it is being measured (a cycle).
    memo: HashMap<(&'a str, Place), Option<Shape>>,
}

impl<'a> Walker<'a> {
    fn walk(&mut self, set: &'a SelectionSet, place: Place) -> Shape {
        let mut shape = Shape::default();
        for selection in &set.items {
            let part = match &selection.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    let typename = usize::from(name == "__typename");
                    let children = &field.node.selection_set.node;
                    match place {
                        Place::Introspection => {
                            let inner = self.walk(children, Place::Introspection);
                            Shape {
                                introspection_depth: inner.introspection_depth + 1,
                                introspection_fields: inner.introspection_fields.saturating_add(1),
                                introspection_typenames: inner
                                    .introspection_typenames
                                    .saturating_add(typename),
                                ..Shape::default()
                            }
                        }
                        Place::Root if name == "__schema" || name == "__type" => {
                            let inner = self.walk(children, Place::Introspection);
                            Shape {
                                depth: 1,
                                introspection_depth: inner.introspection_depth + 1,
                                introspection_fields: inner.introspection_fields.saturating_add(1),
                                introspection_typenames: inner.introspection_typenames,
                                ..Shape::default()
                            }
                        }
                        Place::Root | Place::Ordinary => {
                            let inner = self.walk(children, Place::Ordinary);
                            Shape {
                                depth: inner.depth + 1,
                                fields: inner.fields.saturating_add(1),
                                typenames: inner.typenames.saturating_add(typename),
                                ..inner
                            }
                        }
                    }
                }
                Selection::InlineFragment(inline) => {
                    self.walk(&inline.node.selection_set.node, place)
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    let inner = match self.document.fragments.get_key_value(name) {
                        Some((key, fragment)) => match self.memo.get(&(key.as_str(), place)) {
                            Some(Some(shape)) => *shape,
                            Some(None) => Shape::default(),
                            None => {
                                self.memo.insert((key.as_str(), place), None);
                                let shape = self.walk(&fragment.node.selection_set.node, place);
                                self.memo.insert((key.as_str(), place), Some(shape));
                                shape
                            }
                        },
                        None => Shape::default(),
                    };
                    Shape {
                        spreads: inner.spreads.saturating_add(1),
                        ..inner
                    }
                }
            };
            shape.add(part);
        }
        shape
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graphql::limits::{check, Limits, MAX_INTROSPECTION_FIELDS};

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
                fields: 3,
                typenames: 0,
                introspection_depth: 4,
                introspection_fields: 4,
                introspection_typenames: 0,
                spreads: 0,
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
        assert!(check(&s, &Limits::default()).is_err());
    }

    #[test]
    fn ordinary_fan_out_counts_every_typename_without_expanding_it() {
        // The probe of issue 13: 2^24 `__typename` in 981 bytes.
        let mut query = String::from("{ ...F0 } ");
        for i in 0..24 {
            query.push_str(&format!(
                "fragment F{i} on Query {{ ...F{n} ...F{n} }} ",
                n = i + 1
            ));
        }
        query.push_str("fragment F24 on Query { __typename }");
        let s = shape(&query);
        assert_eq!(s.fields, 1 << 24);
        assert_eq!(s.typenames, 1 << 24);
        assert_eq!(s.depth, 1);
        assert_eq!(s.spreads, (1 << 25) - 1);
        assert!(check(&s, &Limits::default()).is_err());
    }

    #[test]
    fn spreads_of_unknown_fragments_are_counted_too() {
        // No field at all once expanded, but 2^30 spreads for a walk to follow.
        let mut query = String::from("{ ...F0 } ");
        for i in 0..30 {
            query.push_str(&format!(
                "fragment F{i} on Query {{ ...F{n} ...F{n} }} ",
                n = i + 1
            ));
        }
        let s = shape(&query);
        assert_eq!(s.fields, 0);
        assert!(s.spreads > 1 << 30, "{s:?}");
        assert!(check(&s, &Limits::default()).is_err());
    }

    #[test]
    fn typename_counts_as_a_field_everywhere() {
        let s = shape("{ __typename a { __typename b } __schema { __typename types { name } } }");
        assert_eq!((s.fields, s.typenames), (4, 2));
        assert_eq!((s.introspection_fields, s.introspection_typenames), (4, 1));
    }

    #[test]
    fn cyclic_fragments_do_not_hang_the_measure() {
        let s = shape("{ a { ...A } } fragment A on X { b { ...B } } fragment B on X { ...A }");
        assert_eq!(s.depth, 2);
    }
}
