//! What the proxy shows in place of the app: the failed-build page, and the client script.
