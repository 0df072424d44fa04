//! STUB facade.
pub use orm_core::*;
