//! Typed records (placeholder, being written).
