use std::process::ExitCode;

fn main() -> ExitCode {
    // The same binary doubles as the guardian that cleans up if reload is killed (process::guard).
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == reload::GUARD_ARG)
    {
        return ExitCode::from(reload::process::guard::main());
    }
    ExitCode::from(reload::run().code())
}
