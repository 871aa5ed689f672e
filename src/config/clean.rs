//! `clean_on_exit`: paths reload removes when it exits, and the one rule about them: never
//! anything outside the project, however the path is written and whatever appears on the way.

use std::path::{Component, Path, PathBuf};

use anyhow::Result;

/// A path reload removes when it exits (`[build] clean_on_exit`, air's `tmp_dir`). Resolved at
/// start, `..` and symlinks included, to a path strictly inside the project root; anything
/// else is refused then. [`CleanPath::remove`] checks again at removal time, because a
/// symlink may have appeared meanwhile (a build, or anyone who can write in the project).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanPath {
    /// The canonical project root.
    root: PathBuf,
    /// Inside `root`, with every component that existed at start resolved.
    path: PathBuf,
}

impl CleanPath {
    /// Resolve `written` (relative to the canonical `root`, or absolute) as the kernel would:
    /// `..` and symlinks, so `../victim`, `link/x` with `link -> /elsewhere`, or `a/../..` are
    /// seen for what they are. Components that do not exist yet (`tmp/` before the first
    /// build) are taken as written, from their nearest existing ancestor. `Err` says where it
    /// leads when that is not strictly inside `root`.
    pub(super) fn resolve(root: &Path, written: &Path) -> Result<CleanPath, String> {
        let mut path = root.to_owned();
        for component in written.components() {
            match component {
                Component::Prefix(_) | Component::CurDir => {}
                Component::RootDir => path = PathBuf::from("/"),
                Component::ParentDir => {
                    path.pop();
                }
                Component::Normal(name) => {
                    path.push(name);
                    // A symlink is followed to its target, as removing through it would.
                    if let Ok(real) = path.canonicalize() {
                        path = real;
                    }
                }
            }
        }
        if path == root {
            return Err(format!(
                "`{}` is the project root itself",
                written.display()
            ));
        }
        if !path.starts_with(root) {
            return Err(format!(
                "`{}` leads to `{}`, outside the project root `{}`",
                written.display(),
                path.display(),
                root.display()
            ));
        }
        Ok(CleanPath {
            root: root.to_owned(),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Remove the path (a directory with everything in it). A path that is already gone is
    /// fine. If a directory on the way is now a symlink, nothing is removed: it could lead
    /// anywhere. The path itself, if now a symlink, is removed as a link, never followed.
    pub fn remove(&self) -> Result<()> {
        let refuse = |why: String| {
            Err(anyhow::anyhow!(
                "not removing `{}` (clean_on_exit): {why}",
                self.path.display()
            ))
        };
        let failed = |err: std::io::Error| {
            Err(anyhow::Error::new(err).context(format!("cannot remove `{}`", self.path.display())))
        };
        let Ok(relative) = self.path.strip_prefix(&self.root) else {
            return refuse("it is outside the project root".to_owned());
        };
        let mut on_the_way = self.root.clone();
        let mut components = relative.components().peekable();
        while let Some(component) = components.next() {
            on_the_way.push(component);
            let meta = match std::fs::symlink_metadata(&on_the_way) {
                Ok(meta) => meta,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(err) => return failed(err),
            };
            let last = components.peek().is_none();
            let removed = match (last, meta.file_type()) {
                (false, kind) if kind.is_symlink() => {
                    return refuse(format!(
                        "`{}` has become a symlink since reload started",
                        on_the_way.display()
                    ));
                }
                (false, _) => continue,
                // remove_dir_all does not follow symlinks inside the tree either.
                (true, kind) if kind.is_dir() => std::fs::remove_dir_all(&self.path),
                (true, _) => std::fs::remove_file(&self.path),
            };
            return match removed {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => failed(err),
                _ => Ok(()),
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A canonical project root in a temporary directory, with `victim/` next to it.
    fn project_with_a_victim() -> (tempfile::TempDir, PathBuf) {
        let temp = tempfile::tempdir().unwrap();
        let base = temp.path().canonicalize().unwrap();
        std::fs::create_dir_all(base.join("project/src")).unwrap();
        std::fs::create_dir_all(base.join("victim")).unwrap();
        std::fs::write(base.join("victim/precious"), "x").unwrap();
        (temp, base.join("project"))
    }

    #[test]
    fn clean_paths_outside_the_root_are_refused() {
        let (_temp, root) = project_with_a_victim();
        std::os::unix::fs::symlink(root.join("../victim"), root.join("link")).unwrap();
        for written in [
            "../victim",
            "link/x",
            "link",
            "src/../../victim",
            "/tmp",
            "new/../..",
        ] {
            let err = CleanPath::resolve(&root, Path::new(written)).expect_err(written);
            assert!(err.contains("outside the project root"), "{written}: {err}");
        }
        for written in [".", "src/..", ""] {
            let err = CleanPath::resolve(&root, Path::new(written)).expect_err(written);
            assert!(err.contains("project root itself"), "{written}: {err}");
        }
    }

    #[test]
    fn a_clean_path_that_does_not_exist_yet_is_allowed_inside_the_root() {
        let (_temp, root) = project_with_a_victim();
        let clean = CleanPath::resolve(&root, Path::new("tmp/bin")).unwrap();
        assert_eq!(clean.path(), root.join("tmp/bin"));
        let clean = CleanPath::resolve(&root, Path::new("./src/../tmp")).unwrap();
        assert_eq!(clean.path(), root.join("tmp"));
    }

    #[test]
    fn removal_does_not_follow_a_symlink_made_after_the_start() {
        let (_temp, root) = project_with_a_victim();
        let victim = root.join("../victim");
        // `tmp` is checked while it does not exist; then it appears as a link to the victim.
        let whole = CleanPath::resolve(&root, Path::new("tmp")).unwrap();
        let inner = CleanPath::resolve(&root, Path::new("tmp/precious")).unwrap();
        std::os::unix::fs::symlink(&victim, root.join("tmp")).unwrap();

        let err = inner.remove().unwrap_err().to_string();
        assert!(err.contains("has become a symlink"), "{err}");
        whole.remove().unwrap();
        assert!(victim.join("precious").exists(), "the victim survives");
        assert!(
            std::fs::symlink_metadata(root.join("tmp")).is_err(),
            "the link is gone"
        );

        std::fs::create_dir_all(root.join("tmp/deep")).unwrap();
        whole.remove().unwrap();
        assert!(!root.join("tmp").exists(), "a real directory is removed");
        whole.remove().unwrap();
    }
}
