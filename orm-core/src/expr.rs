//! STUB: expr (session work).
