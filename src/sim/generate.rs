//! Data generator (being written).
