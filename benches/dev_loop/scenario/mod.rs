//! The eight scenarios, one file each, in the order they run.

mod browser;
mod build_cancel;
mod burst;
mod idle;
mod ignored_bulk;
mod large_tree;
mod proxy;
mod proxy_overhead;
mod restart;
mod restart_gap;

pub(crate) use browser::browser;
pub(crate) use build_cancel::build_cancel;
pub(crate) use burst::burst;
pub(crate) use idle::idle;
pub(crate) use ignored_bulk::ignored_bulk;
pub(crate) use large_tree::large_tree;
pub(crate) use proxy::proxy;
pub(crate) use restart::restart_overhead;
pub(crate) use restart_gap::restart_gap;
