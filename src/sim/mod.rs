//! The platform simulator (being written).

mod catalog;
pub mod docs;
mod factory;
pub mod generate;
mod lifecycle;
pub mod messages;
pub mod model;
pub mod mutate;

#[cfg(test)]
mod checks;
