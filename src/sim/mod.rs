//! The platform simulator (being written).

pub mod generate;
pub mod model;
pub mod mutate;
