//! Content negotiation for GraphQL over HTTP: which media type a response is sent as, from the
//! request's `Accept`. `application/graphql-response+json` (the spec's own, with meaningful
//! status codes) when asked for by name; `application/json` (the legacy type: always 200 for a
//! well-formed GraphQL response) when asked for, for a wildcard, or with no `Accept` at all, as
//! the spec recommends for clients written before it.

use axum::http::header::ACCEPT;
use axum::http::HeaderMap;

/// The two response media types of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    GraphqlResponseJson,
    Json,
}

impl Media {
    pub fn content_type(self) -> &'static str {
        match self {
            Media::GraphqlResponseJson => "application/graphql-response+json; charset=utf-8",
            Media::Json => "application/json; charset=utf-8",
        }
    }
}

/// One range of an `Accept` header: type, subtype, q (0 to 1000, in thousandths).
struct Range<'a> {
    kind: &'a str,
    subtype: &'a str,
    q: u16,
}

fn ranges(headers: &HeaderMap) -> Vec<Range<'_>> {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|part| {
            let mut params = part.split(';');
            let (kind, subtype) = params.next()?.trim().split_once('/')?;
            let q = params
                .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
                .find_map(parse_q)
                .unwrap_or(1000);
            Some(Range {
                kind: kind.trim(),
                subtype: subtype.trim(),
                q,
            })
        })
        .collect()
}

/// `q` as thousandths; anything unparseable is ignored (treated as absent).
fn parse_q(text: &str) -> Option<u16> {
    let value: f32 = text.trim().parse().ok()?;
    (0.0..=1.0)
        .contains(&value)
        .then(|| (value * 1000.0).round() as u16)
}

/// The q a media type gets: from its most specific matching range (RFC 9110 §12.5.1), and
/// whether that was the type named exactly.
fn quality(ranges: &[Range<'_>], kind: &str, subtype: &str) -> (u16, bool) {
    let exact = ranges
        .iter()
        .find(|r| r.kind.eq_ignore_ascii_case(kind) && r.subtype.eq_ignore_ascii_case(subtype));
    if let Some(range) = exact {
        return (range.q, true);
    }
    let partial = ranges
        .iter()
        .find(|r| r.kind.eq_ignore_ascii_case(kind) && r.subtype == "*");
    let any = ranges.iter().find(|r| r.kind == "*" && r.subtype == "*");
    (partial.or(any).map_or(0, |r| r.q), false)
}

/// The media type to answer with, or `None` when the client accepts neither (406).
pub fn negotiate(headers: &HeaderMap) -> Option<Media> {
    let ranges = ranges(headers);
    if ranges.is_empty() {
        return Some(Media::Json);
    }
    let (spec, spec_named) = quality(&ranges, "application", "graphql-response+json");
    let (json, _) = quality(&ranges, "application", "json");
    if spec > 0 && spec_named && spec >= json {
        Some(Media::GraphqlResponseJson)
    } else if json > 0 {
        Some(Media::Json)
    } else if spec > 0 {
        Some(Media::GraphqlResponseJson)
    } else {
        None
    }
}

/// A browser asking for a page: `text/html` named with a q above zero.
pub fn wants_html(headers: &HeaderMap) -> bool {
    let ranges = ranges(headers);
    matches!(quality(&ranges, "text", "html"), (q, true) if q > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, value.parse().expect("header value"));
        headers
    }

    #[test]
    fn the_spec_type_is_chosen_when_named() {
        for value in [
            "application/graphql-response+json",
            "application/graphql-response+json, application/json",
            "application/json;q=0.9, application/graphql-response+json",
            "Application/GraphQL-Response+JSON; charset=utf-8",
        ] {
            assert_eq!(
                negotiate(&accept(value)),
                Some(Media::GraphqlResponseJson),
                "{value}"
            );
        }
    }

    #[test]
    fn legacy_json_for_json_wildcards_and_no_accept() {
        assert_eq!(negotiate(&HeaderMap::new()), Some(Media::Json));
        for value in [
            "application/json",
            "*/*",
            "application/*",
            "text/html,application/xhtml+xml,*/*;q=0.8",
            "application/graphql-response+json;q=0.5, application/json",
        ] {
            assert_eq!(negotiate(&accept(value)), Some(Media::Json), "{value}");
        }
    }

    #[test]
    fn nothing_acceptable_is_none() {
        assert_eq!(negotiate(&accept("text/html")), None);
        assert_eq!(negotiate(&accept("application/json;q=0")), None);
    }

    #[test]
    fn html_only_when_named() {
        assert!(wants_html(&accept(
            "text/html,application/xhtml+xml,*/*;q=0.8"
        )));
        assert!(!wants_html(&accept("*/*")));
        assert!(!wants_html(&accept("text/html;q=0")));
        assert!(!wants_html(&HeaderMap::new()));
    }
}
