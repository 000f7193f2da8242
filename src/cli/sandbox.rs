//! `perstack sandbox check`.

use std::process::ExitCode;

use clap::Subcommand;

use crate::sandbox::kernel_support;

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Print what this machine's kernel supports; exit 0 when skills can run confined, 1 when not
    Check,
}

pub(super) fn run(command: &SandboxCommand) -> ExitCode {
    match command {
        SandboxCommand::Check => {
            let support = kernel_support();
            print!("{}", support.report());
            if support.require().is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
