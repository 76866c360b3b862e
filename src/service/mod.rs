//! The compile service (`kiln serve`): one process per cache directory that takes what runs
//! leave at exit, compiles it off their critical path and merges it into the packs.
//!
//! A run that ends with work for the cache writes it as a work journal (`cache::journal`:
//! the units it compiled and the blocks it ran only in the baseline tier) and wakes the
//! directory's service through its socket (`client::hand_over`), starting one if none runs.
//! The journal on disk is the hand-off: a service that is missing, dies or hangs loses
//! nothing, and whichever service runs next merges it. The service lock (`endpoint`) admits
//! one service per directory, so however many runs end at once, at most one process compiles
//! and merges for them. The service compiles at low priority on a pool of at most one job per
//! core (fewer while the machine is busy), most-shared blocks first (`queue`), writes packs,
//! collects garbage over the cap, reports its `status`, and exits after an idle time-out.
//! Once every block is in the packs it forms regions from them (`regions`): many blocks
//! compiled as one unit, read from the module's file.

pub mod client;
pub mod endpoint;
mod queue;
mod regions;
mod server;
pub mod status;
mod worker;

pub use regions::{ModuleImage, Planned};
pub use server::{serve, ServeOptions};
pub use worker::compile_region;
