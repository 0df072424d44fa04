//! STUB: the backend helper writes this crate.
