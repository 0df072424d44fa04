//! STUB: the derive helper replaces this module.
