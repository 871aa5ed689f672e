//! Zero-config: what a project directory tells us when there is no reload.toml.
//! Today: a Cargo package or workspace, described by `cargo metadata` (binaries, target dir).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Result;
use serde::Deserialize;

use super::usage;

#[derive(Debug)]
pub(crate) struct CargoProject {
    /// Never watched: builds write here.
    pub(crate) target_directory: PathBuf,
    /// Binary targets of the workspace members, or why cargo could not list them.
    bins: Result<Vec<String>, String>,
}

#[derive(Deserialize)]
struct Metadata {
    target_directory: PathBuf,
    packages: Vec<Package>,
}

#[derive(Deserialize)]
struct Package {
    targets: Vec<Target>,
}

#[derive(Deserialize)]
struct Target {
    name: String,
    kind: Vec<String>,
}

/// `Some` when `root` holds a Cargo.toml. Asks cargo (no network, no dependency resolution) so
/// that a custom `target-dir` and every binary of a workspace are known.
pub(crate) fn cargo_project(root: &Path) -> Option<CargoProject> {
    let manifest = root.join("Cargo.toml");
    if !manifest.is_file() {
        return None;
    }
    let fallback = root.join("target");
    let output = Command::new("cargo")
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(&manifest)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    let metadata = match output {
        Ok(out) if out.status.success() => serde_json::from_slice::<Metadata>(&out.stdout)
            .map_err(|err| format!("cannot read `cargo metadata` output: {err}")),
        Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        Err(err) => Err(format!("cannot run cargo: {err}")),
    };
    Some(match metadata {
        Ok(metadata) => CargoProject {
            target_directory: metadata.target_directory,
            bins: Ok(metadata
                .packages
                .into_iter()
                .flat_map(|p| p.targets)
                .filter(|t| t.kind.iter().any(|k| k == "bin"))
                .map(|t| t.name)
                .collect()),
        },
        Err(err) => CargoProject {
            target_directory: fallback,
            bins: Err(err),
        },
    })
}

impl CargoProject {
    /// The binary to build and run: `--bin NAME` when given (and it exists), else the only one.
    pub(crate) fn select_bin(&self, requested: Option<&str>) -> Result<String> {
        let bins = self.bins.as_ref().map_err(|err| {
            usage(format!(
                "this Cargo project cannot be read, so reload cannot pick a binary:\n{err}"
            ))
        })?;
        match (requested, bins.as_slice()) {
            (Some(name), _) if bins.iter().any(|b| b == name) => Ok(name.to_owned()),
            (Some(name), []) => Err(usage(format!(
                "--bin {name}: this Cargo project has no binary"
            ))),
            (Some(name), _) => Err(usage(format!(
                "--bin {name}: no such binary; this Cargo project has: {}",
                bins.join(", ")
            ))),
            (None, [only]) => Ok(only.clone()),
            (None, []) => Err(usage(
                "this Cargo project has no binary to run (no src/main.rs or [[bin]])\n  \
                 help: pass the server to run after `--`, or add a binary target",
            )),
            (None, several) => Err(usage(format!(
                "this Cargo project has several binaries: {}\n  help: choose one with --bin NAME",
                several.join(", ")
            ))),
        }
    }
}

/// `cargo build` for one binary, with artifacts as JSON on stdout and diagnostics rendered for
/// humans on stderr.
pub(crate) fn cargo_build_args(bin: &str) -> Vec<String> {
    [
        "cargo",
        "build",
        "--message-format=json-render-diagnostics",
        "--bin",
        bin,
    ]
    .map(str::to_owned)
    .to_vec()
}
