//! The TCP ports a process group listens on, from /proc (Linux): a server that never listens
//! where it was expected often listens somewhere else, and saying where saves a guess.

use std::collections::{BTreeSet, HashSet};
use std::fs;

/// Every TCP port some process of group `pgid` listens on (IPv4 and IPv6), in order. Empty
/// when there are none or /proc cannot say (not Linux, or no permission).
pub fn listening_ports(pgid: i32) -> BTreeSet<u16> {
    let inodes = socket_inodes(pgid);
    if inodes.is_empty() {
        return BTreeSet::new();
    }
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| fs::read_to_string(table).ok())
        .flat_map(|table| listeners(&table, &inodes))
        .collect()
}

/// The socket inodes the group's processes hold open.
fn socket_inodes(pgid: i32) -> HashSet<u64> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return HashSet::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| group_of(*pid) == Some(pgid))
        .filter_map(|pid| fs::read_dir(format!("/proc/{pid}/fd")).ok())
        .flat_map(|fds| fds.filter_map(|fd| fs::read_link(fd.ok()?.path()).ok()))
        .filter_map(|target| {
            let target = target.to_str()?;
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

fn group_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (name) state ppid pgrp ...`; the name may hold spaces and parentheses.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// The local ports of the LISTEN rows (state 0A) of a /proc/net/tcp table whose inode is one
/// of `inodes`.
fn listeners(table: &str, inodes: &HashSet<u64>) -> Vec<u16> {
    table
        .lines()
        .skip(1)
        .filter_map(|row| {
            let fields: Vec<&str> = row.split_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            if *state != "0A" || !inodes.contains(&inode.parse().ok()?) {
                return None;
            }
            u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listening_rows_of_the_groups_sockets_count() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0
   1: 00000000:1389 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 9999 1 0000000000000000 100 0 0 10 0
   2: 0100007F:A1B2 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 4243 1 0000000000000000 100 0 0 10 0
";
        let inodes = HashSet::from([4242, 4243]);
        assert_eq!(
            listeners(table, &inodes),
            [8080],
            "5001 is another process's, A1B2 a connection"
        );
    }

    #[test]
    fn a_real_listener_of_this_process_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let own = nix::unistd::getpgrp().as_raw();
        assert!(listening_ports(own).contains(&port));
    }
}
