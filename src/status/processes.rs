//! The words for what `process` reports ([`Notice`]): a group it could not signal, the guardian,
//! and the processes a sweep killed. `run` names [`report`] as the process module's listener.

use std::collections::BTreeMap;

use crate::process::{Escapee, LeftBy, Notice, Swept};

/// Say `notice` as a status line.
pub fn report(notice: Notice) {
    match notice {
        Notice::CannotSignal { pgid, error } => {
            super::warning(&format!("cannot signal process group {pgid}: {error}"));
        }
        Notice::CannotAdopt(error) => super::warning(&format!(
            "cannot adopt orphaned processes ({error}): a server that daemonizes may outlive \
             reload"
        )),
        Notice::GuardianNotStarted(error) => super::warning(&format!(
            "cannot start the guardian process ({error}): if reload is killed with SIGKILL, \
             processes its servers started in the background may be left running"
        )),
        Notice::GuardianGone(error) => {
            super::warning(&format!("the guardian process is gone: {error}"));
        }
        Notice::Swept(swept) => {
            for line in swept_lines(&swept) {
                super::info(&line);
            }
        }
    }
}

/// One line for each group that left processes behind, in the order of their words.
fn swept_lines(swept: &Swept) -> Vec<String> {
    let by_words: BTreeMap<String, &[Escapee]> = swept
        .iter()
        .map(|(left_by, escapees)| (left_by_words(left_by), escapees.as_slice()))
        .collect();
    by_words
        .into_iter()
        .map(|(who, escapees)| {
            let count = escapees.len();
            let list: Vec<String> = escapees
                .iter()
                .map(|escapee| format!("{} {}", escapee.pid, escapee.name))
                .collect();
            format!(
                "killed {count} process{} left running outside its process group by {who}: {}",
                if count == 1 { "" } else { "es" },
                list.join(", ")
            )
        })
        .collect()
}

fn left_by_words(left_by: &LeftBy) -> String {
    match left_by {
        LeftBy::Build => "the build".to_owned(),
        LeftBy::Post(command) => format!("post command `{command}`"),
        LeftBy::App { pid } => format!("app (pid {pid})"),
        LeftBy::Earlier => "an earlier process".to_owned(),
        LeftBy::Unknown => "an unknown process".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_says_what_it_killed_by_who_left_it_in_the_order_of_the_words() {
        let escapee = |pid: i32, name: &str| Escapee {
            pid,
            name: name.to_owned(),
        };
        let swept = Swept::from([
            (LeftBy::Build, vec![escapee(12, "sleep"), escapee(13, "sh")]),
            (
                LeftBy::Post("make docs".to_owned()),
                vec![escapee(20, "mkdocs")],
            ),
            (LeftBy::App { pid: 7 }, vec![escapee(30, "node")]),
            (LeftBy::Earlier, vec![escapee(40, "x")]),
            (LeftBy::Unknown, vec![escapee(50, "y")]),
        ]);
        assert_eq!(
            swept_lines(&swept),
            [
                "killed 1 process left running outside its process group by an earlier \
                 process: 40 x",
                "killed 1 process left running outside its process group by an unknown \
                 process: 50 y",
                "killed 1 process left running outside its process group by app (pid 7): 30 \
                 node",
                "killed 1 process left running outside its process group by post command \
                 `make docs`: 20 mkdocs",
                "killed 2 processes left running outside its process group by the build: 12 \
                 sleep, 13 sh",
            ]
        );
    }
}
