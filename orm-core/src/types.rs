//! STUB: the derive helper replaces this module (chrono, decimal, json, uuid conversions).
