//! Putting the live-reload script into HTML responses.
