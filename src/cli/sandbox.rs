//! `perstack sandbox check`, and the `--sandbox` switch of `run` and `start`.

use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use crate::sandbox::kernel_support;

/// `--sandbox on|off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SandboxSwitch {
    /// Confine every skill process (the default, as `runtime = "docker"`)
    On,
    /// Run skill processes unconfined (as `runtime = "local"`)
    Off,
}

impl SandboxSwitch {
    /// The `runtime` value of perstack.toml this switch stands for.
    pub fn runtime(self) -> &'static str {
        match self {
            SandboxSwitch::On => "docker",
            SandboxSwitch::Off => "local",
        }
    }
}

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
