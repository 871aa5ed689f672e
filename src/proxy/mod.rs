//! The dev proxy: where the browser connects instead of the server. It holds requests while no
//! server is ready, forwards them to the one that is, retries what never reached a server, and
//! puts the live-reload script into HTML pages. It is a subscriber to the lifecycle bus: it never
//! spawns, never signals and never decides when to restart.

pub mod inject;
pub mod page;
