//! Bounds on every value a client can send. Checked in the deciders so that no adapter can
//! forget them: strings are trimmed and bounded, quantities are bounded well inside `i64`.

use super::{DomainError, MAX_QUANTITY};

/// A required, trimmed string of 1..=max characters.
pub fn required_text(field: &'static str, value: &str, max: usize) -> Result<String, DomainError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(DomainError::invalid(
            field,
            format!("{field} must not be empty"),
        ));
    }
    bounded(field, trimmed, max)
}

/// An optional, trimmed string of at most max characters; empty becomes `None`.
pub fn optional_text(
    field: &'static str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, DomainError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => bounded(field, text, max).map(Some),
    }
}

fn bounded(field: &'static str, text: &str, max: usize) -> Result<String, DomainError> {
    let count = text.chars().count();
    if count > max {
        return Err(DomainError::invalid(
            field,
            format!("{field} is {count} characters long; at most {max} are allowed"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(text.to_owned())
}

/// A code-like identifier (SKU, warehouse code): letters, digits, `-`, `_`, `.`, `/`.
pub fn code(field: &'static str, value: &str, max: usize) -> Result<String, DomainError> {
    let text = required_text(field, value, max)?;
    if !text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
    {
        return Err(DomainError::invalid(
            field,
            format!("{field} may contain only letters, digits, '-', '_', '.' and '/'"),
        ));
    }
    Ok(text)
}

/// A quantity in `min..=MAX_QUANTITY`.
pub fn quantity(field: &'static str, value: i64, min: i64) -> Result<i64, DomainError> {
    if value < min || value > MAX_QUANTITY {
        return Err(DomainError::invalid(
            field,
            format!("{field} must be between {min} and {MAX_QUANTITY}, got {value}"),
        ));
    }
    Ok(value)
}

pub const NAME_MAX: usize = 200;
pub const ADDRESS_MAX: usize = 500;
pub const CODE_MAX: usize = 32;
pub const SKU_MAX: usize = 64;
pub const PRODUCT_ID_MAX: usize = 100;
pub const ORDER_ID_MAX: usize = 100;
pub const REASON_MAX: usize = 500;
pub const REFERENCE_MAX: usize = 200;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_oversized_strings_are_rejected() {
        assert!(required_text("name", "   ", 10).is_err());
        assert!(required_text("name", &"x".repeat(11), 10).is_err());
        assert_eq!(required_text("name", " ok ", 10).unwrap(), "ok");
        assert!(code("sku", "AB C", 10).is_err());
        assert!(required_text("name", "a\u{0}b", 10).is_err());
    }

    #[test]
    fn quantities_are_bounded() {
        assert!(quantity("q", 0, 1).is_err());
        assert!(quantity("q", MAX_QUANTITY + 1, 0).is_err());
        assert_eq!(quantity("q", MAX_QUANTITY, 0).unwrap(), MAX_QUANTITY);
    }
}
