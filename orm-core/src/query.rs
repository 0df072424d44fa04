//! STUB: query (session work).
