//! Finding the program a command names, as exec would: a name with a `/` is a path, anything
//! else is looked up in each PATH directory in turn. Only an executable regular file counts, so
//! a directory or a file without its execute bit earlier on PATH does not hide the program
//! later on it (execvp skips them the same way). Build and supervise both resolve programs here,
//! so the two can never disagree on what "found" means.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Why [`find_program`] found nothing. Each caller words it for its own users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramNotFound {
    /// The program was a path (it holds a `/`) and names no executable file.
    NotExecutable(PathBuf),
    /// The program was a bare name and no PATH directory holds an executable file by that name.
    NotOnPath(OsString),
}

impl fmt::Display for ProgramNotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProgramNotFound::NotExecutable(path) => write!(
                f,
                "`{}` does not exist or is not executable",
                path.display()
            ),
            ProgramNotFound::NotOnPath(name) => {
                write!(f, "`{}` is not on PATH", Path::new(name).display())
            }
        }
    }
}

impl std::error::Error for ProgramNotFound {}

/// The executable file `program` names. A path is taken relative to `root` (where the child
/// runs). A bare name is searched in `path_override` if given (a server's own PATH, with
/// node_modules/.bin first), else in reload's PATH; relative PATH entries, and the empty entry
/// that means the current directory, are taken relative to `root` too, since that is the
/// directory the child runs in.
pub fn find_program(
    program: &OsStr,
    root: &Path,
    path_override: Option<&OsStr>,
) -> Result<PathBuf, ProgramNotFound> {
    // exec's own rule: any slash, not only a leading `./`, makes the name a path.
    if program.as_bytes().contains(&b'/') {
        let path = root.join(program);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(ProgramNotFound::NotExecutable(PathBuf::from(program)))
        };
    }
    let search = path_override
        .map(OsString::from)
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    std::env::split_paths(&search)
        .map(|dir| root.join(dir).join(program))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| ProgramNotFound::NotOnPath(program.to_owned()))
}

/// A regular file (through symlinks) with at least one execute bit. Whether this user may run
/// it is left to exec: its error then says why, which is clearer than skipping the file.
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn write_file(path: &Path, mode: u32) {
        std::fs::write(path, "#!/bin/sh\n").expect("write a program");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn joined(dirs: &[&Path]) -> OsString {
        std::env::join_paths(dirs).expect("PATH entries without `:`")
    }

    #[test]
    fn a_file_without_the_execute_bit_earlier_on_path_is_skipped() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (first, second) = (tmp.path().join("first"), tmp.path().join("second"));
        std::fs::create_dir(&first).expect("mkdir");
        std::fs::create_dir(&second).expect("mkdir");
        write_file(&first.join("tool"), 0o644);
        write_file(&second.join("tool"), 0o755);
        let path = joined(&[&first, &second]);
        assert_eq!(
            find_program("tool".as_ref(), tmp.path(), Some(&path)),
            Ok(second.join("tool"))
        );
        let only_first = joined(&[&first]);
        assert_eq!(
            find_program("tool".as_ref(), tmp.path(), Some(&only_first)),
            Err(ProgramNotFound::NotOnPath("tool".into()))
        );
    }

    #[test]
    fn a_directory_named_like_the_program_is_skipped() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (first, second) = (tmp.path().join("first"), tmp.path().join("second"));
        // A directory's execute bit means "searchable", not "runnable".
        std::fs::create_dir_all(first.join("tool")).expect("mkdir");
        std::fs::create_dir(&second).expect("mkdir");
        write_file(&second.join("tool"), 0o755);
        let path = joined(&[&first, &second]);
        assert_eq!(
            find_program("tool".as_ref(), tmp.path(), Some(&path)),
            Ok(second.join("tool"))
        );
    }

    #[test]
    fn a_path_is_relative_to_the_root_and_must_be_executable() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tmp.path().join("bin")).expect("mkdir");
        write_file(&tmp.path().join("bin/app"), 0o755);
        write_file(&tmp.path().join("bin/data"), 0o644);
        let nowhere = OsString::from("/nonexistent");
        assert_eq!(
            find_program("bin/app".as_ref(), tmp.path(), Some(&nowhere)),
            Ok(tmp.path().join("bin/app"))
        );
        assert_eq!(
            find_program("./bin/data".as_ref(), tmp.path(), Some(&nowhere)),
            Err(ProgramNotFound::NotExecutable("./bin/data".into()))
        );
        // A bare name is looked up on PATH only, never in the root.
        assert_eq!(
            find_program("app".as_ref(), &tmp.path().join("bin"), Some(&nowhere)),
            Err(ProgramNotFound::NotOnPath("app".into()))
        );
    }

    #[test]
    fn relative_path_entries_are_taken_from_the_root() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(tmp.path().join("node_modules/.bin")).expect("mkdir");
        write_file(&tmp.path().join("node_modules/.bin/vite"), 0o755);
        let path = OsString::from("node_modules/.bin:/nonexistent");
        assert_eq!(
            find_program("vite".as_ref(), tmp.path(), Some(&path)),
            Ok(tmp.path().join("node_modules/.bin/vite"))
        );
    }
}
