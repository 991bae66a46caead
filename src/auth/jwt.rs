//! JWT bearer tokens from an identity provider.
