//! The framework most of this tool's Go users run, as they run it: a Gin app that calls
//! `r.Run(":PORT")` with the port written in its source, an `.air.toml` with air's `[proxy]`
//! section, and a bare `reload`. Gin is Debian's (golang-github-gin-gonic-gin-dev, built in
//! GOPATH mode; .ci/run installs it), so the build needs no network.

use std::path::Path;
use std::time::Duration;

use super::{Load, SCRIPT, get, request};
use crate::support::needs::{GOPATH, Tool, require};
use crate::support::{Project, Session, free_port};

/// The first build compiles Gin and its dependencies when Go's cache is cold.
const FIRST_BUILD: Duration = Duration::from_secs(300);
/// Later builds, on a loaded machine.
const REBUILD: Duration = Duration::from_secs(120);

/// A Gin app, as `gin.Default()` users write it, that serves `version` at /text and a page at /.
fn gin_app(app_port: u16, version: &str) -> String {
    format!(
        r#"package main

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

const version = "{version}"

func main() {{
	r := gin.Default()
	r.GET("/text", func(c *gin.Context) {{
		c.String(http.StatusOK, "version %s", version)
	}})
	r.GET("/", func(c *gin.Context) {{
		page := "<!doctype html><html><head><title>app</title></head><body><h1>" + version + "</h1></body></html>"
		c.Data(http.StatusOK, "text/html; charset=utf-8", []byte(page))
	}})
	r.Run(":{app_port}")
}}
"#
    )
}

/// An `.air.toml` as air users have it, proxy included.
fn air_toml(proxy: u16, app: u16) -> String {
    format!(
        r#"root = "."
tmp_dir = "tmp"

[build]
cmd = "go build -o ./tmp/main ."
bin = "./tmp/main"
include_ext = ["go", "tpl", "tmpl", "html"]
exclude_dir = ["assets", "tmp", "vendor"]
delay = 0

[proxy]
enabled = true
proxy_port = {proxy}
app_port = {app}
"#
    )
}

/// Wait until the proxy answers `version <version>` at /text.
#[track_caller]
fn wait_version(session: &Session, proxy: u16, version: &str, within: Duration) {
    let expected = format!("version {version}");
    session.wait_until_within(
        within,
        &format!("the proxy to serve the Gin app's {version}"),
        || {
            request(proxy, "GET", "/text", &[], b"")
                .ok()
                .filter(|answer| answer.status == 200 && answer.text() == expected)
        },
    );
}

#[test]
fn a_gin_project_with_airs_proxy_section_works_unchanged_under_a_bare_reload() {
    require(Tool::Go);
    require(Tool::Gin);
    let (proxy, app) = (free_port(), free_port());
    let project = Project::new()
        .file("main.go", &gin_app(app, "v1"))
        .file(".air.toml", &air_toml(proxy, app));
    // Go's cache is kept beside the test binaries, so that only the first run on a machine
    // compiles Gin.
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gin-gocache");
    let cache = cache.to_str().expect("a UTF-8 target directory");
    let session = project.start_with_env(
        &[],
        &[
            ("GO111MODULE", "off"),
            ("GOPATH", GOPATH),
            ("GOCACHE", cache),
            ("GOFLAGS", ""),
            ("GOPROXY", "off"),
            ("GOTOOLCHAIN", "local"),
        ],
    );
    wait_version(&session, proxy, "v1", FIRST_BUILD);
    let stderr = session.stderr();
    assert!(
        stderr.contains(&format!("proxy on http://127.0.0.1:{proxy} -> app :{app}")),
        "the startup line says where to point the browser{}",
        session.context()
    );
    assert!(
        !stderr
            .lines()
            .any(|line| line.starts_with("[reload] warning")),
        "air's [proxy] is honoured, not warned about{}",
        session.context()
    );
    let page = get(proxy, "/").text();
    assert_eq!(page.matches(SCRIPT).count(), 1, "{page}");
    assert!(page.contains("<h1>v1</h1>"), "{page}");

    // Gin binds its port itself and dies on SIGTERM without draining: through the proxy, no
    // request fails across the restarts.
    let load = Load::start(proxy);
    for version in ["v2", "v3", "v4"] {
        project.write("main.go", &gin_app(app, version));
        wait_version(&session, proxy, version, REBUILD);
    }
    load.assert_none_failed(&session);
    let page = get(proxy, "/").text();
    assert!(page.contains("<h1>v4</h1>"), "{page}");
}
