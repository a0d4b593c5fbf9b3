//! The `bertscope` command: every engine capability as a subcommand.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    bertscope::runtime::tune_threads();
    bertscope::runtime::tune_allocator();
    match cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
