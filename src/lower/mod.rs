//! Lowering: Ruby's side of every conversion.

pub mod ruby_layout;
