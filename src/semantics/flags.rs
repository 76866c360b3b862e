//! Transitional re-export: lazy-flag evaluation lives in `crate::cpu::flags`. The semantics
//! modules that still name `semantics::flags` reach it through here.

pub use crate::cpu::flags::{cond, materialize, sext, size_mask, zext};
