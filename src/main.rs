// The binary only dispatches into the library; unsafe code belongs in its `process` module.
#![deny(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    // The same binary doubles as the guardian that cleans up if reload is killed, and as the
    // shim that gives a server its own pid in LISTEN_PID (see the process module).
    let mut args = std::env::args_os().skip(1);
    match args.next() {
        Some(arg) if arg == reload::process::guard::GUARD_ARG => {
            ExitCode::from(reload::process::guard::main())
        }
        Some(arg) if arg == reload::process::EXEC_ARG => {
            ExitCode::from(reload::process::exec_shim(args))
        }
        _ => ExitCode::from(reload::run().code()),
    }
}
