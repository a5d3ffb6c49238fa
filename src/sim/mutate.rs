//! Mutation clock (being written).
