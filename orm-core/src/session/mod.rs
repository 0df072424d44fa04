//! STUB: session.
