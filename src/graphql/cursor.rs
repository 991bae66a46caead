//! Opaque connection cursors: URL-safe unpadded base64 of `<kind>:<key>` (e.g.
//! `item:0190…`), so a client cannot mistake one list's cursor for another's, and the key
//! behind it can change without breaking anyone. Decoding is strict: another kind's cursor,
//! bad base64 or a key that does not re-encode to the same text is INVALID_INPUT.
//!
//! Deprecated, accepted for one release: the raw keys the API handed out before (a UUID or
//! a sequence number), which older clients may have stored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use uuid::Uuid;

use super::bad_argument;

/// A key a list is ordered by.
pub trait CursorKey: Sized + Copy {
    fn to_text(&self) -> String;
    fn from_text(text: &str) -> Option<Self>;
}

impl CursorKey for Uuid {
    fn to_text(&self) -> String {
        self.hyphenated().to_string()
    }
    fn from_text(text: &str) -> Option<Self> {
        Uuid::parse_str(text).ok()
    }
}

impl CursorKey for u64 {
    fn to_text(&self) -> String {
        self.to_string()
    }
    fn from_text(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

/// The cursor kind of each list: the tag inside its cursors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorKind {
    Warehouse,
    Item,
    Allocation,
    History,
    Event,
    Transfer,
}

impl CursorKind {
    fn tag(self) -> &'static str {
        match self {
            CursorKind::Warehouse => "warehouse",
            CursorKind::Item => "item",
            CursorKind::Allocation => "allocation",
            CursorKind::History => "history",
            CursorKind::Event => "event",
            CursorKind::Transfer => "transfer",
        }
    }

    pub fn encode<K: CursorKey>(self, key: &K) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.tag(), key.to_text()))
    }

    /// The key of a cursor of this kind; `argument` names the argument in the error.
    pub fn decode<K: CursorKey>(self, argument: &str, cursor: &str) -> async_graphql::Result<K> {
        if let Some(key) = self.decode_opaque(cursor) {
            return Ok(key);
        }
        // Deprecated: the raw key, as cursors were before they were opaque.
        if let Some(key) = K::from_text(cursor) {
            return Ok(key);
        }
        Err(bad_argument(format!(
            "{argument} is not a cursor of this list (pass a cursor this list returned)"
        )))
    }

    fn decode_opaque<K: CursorKey>(self, cursor: &str) -> Option<K> {
        let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (tag, key) = text.split_once(':')?;
        if tag != self.tag() {
            return None;
        }
        let parsed = K::from_text(key)?;
        // Strict: only the exact text we hand out.
        (parsed.to_text() == key).then_some(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_url_safe_without_padding() {
        let id = Uuid::now_v7();
        let cursor = CursorKind::Item.encode(&id);
        assert!(!cursor.contains('=') && !cursor.contains('+') && !cursor.contains('/'));
        assert_eq!(
            CursorKind::Item.decode::<Uuid>("after", &cursor).ok(),
            Some(id)
        );
        let cursor = CursorKind::History.encode(&42u64);
        assert_eq!(
            CursorKind::History.decode::<u64>("after", &cursor).ok(),
            Some(42)
        );
    }

    #[test]
    fn another_lists_cursor_or_garbage_is_refused() {
        let id = Uuid::now_v7();
        let item = CursorKind::Item.encode(&id);
        assert!(CursorKind::Allocation
            .decode::<Uuid>("after", &item)
            .is_err());
        assert!(CursorKind::Event
            .decode::<u64>("after", &CursorKind::History.encode(&3u64))
            .is_err());
        for garbage in ["", "!!!", "aXRlbTo", "aXRlbTpub3QtYS11dWlk", "%%%"] {
            assert!(
                CursorKind::Item.decode::<Uuid>("after", garbage).is_err(),
                "{garbage:?} accepted"
            );
        }
        // A non-canonical key inside a well-formed cursor: `item:` + upper-case UUID.
        let upper = URL_SAFE_NO_PAD.encode(format!("item:{}", id.to_string().to_uppercase()));
        assert!(CursorKind::Item.decode::<Uuid>("after", &upper).is_err());
    }

    #[test]
    fn the_deprecated_raw_keys_are_still_accepted() {
        let id = Uuid::now_v7();
        assert_eq!(
            CursorKind::Warehouse
                .decode::<Uuid>("after", &id.to_string())
                .ok(),
            Some(id)
        );
        assert_eq!(CursorKind::Event.decode::<u64>("after", "7").ok(), Some(7));
    }
}
