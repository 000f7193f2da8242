//! Keeping server processes from outliving us.
//!
//! Each server runs as the leader of its own process group, so the group can be killed as a
//! whole (an `npx` launcher and the node process under it go together) when its connection is
//! closed or dropped.
//!
//! Being in its own group, a server does not get the terminal's Ctrl-C: whoever handles SIGINT
//! shuts the skills down (or drops them). If our process dies without running destructors, the
//! direct child gets SIGKILL from the kernel (Linux `PR_SET_PDEATHSIG`), and anything below it
//! sees its stdin close. The death signal follows the thread that spawned the child, so spawn
//! servers from runtime worker threads (as `McpSkill` does), not from short-lived threads.

use std::time::{Duration, Instant};

/// Puts the child in a new process group and, on Linux, ties its life to ours.
pub(crate) fn isolate(command: &mut tokio::process::Command) {
    command.process_group(0);
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the closure runs between fork and exec and only calls prctl, getppid and
        // _exit, which are async-signal-safe and touch no memory of ours.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                // We may have died between the fork and the prctl: then no signal will come.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
}

/// The process group a server leads; killed when dropped.
#[derive(Debug)]
pub(crate) struct ProcessGroup {
    pgid: libc::pid_t,
}

impl ProcessGroup {
    pub(crate) fn new(pid: u32) -> Self {
        ProcessGroup {
            pgid: libc::pid_t::try_from(pid).unwrap_or(0),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        u32::try_from(self.pgid).unwrap_or(0)
    }

    pub(crate) fn kill(&self) {
        // pgid 0 would mean our own group: never signal that.
        if self.pgid > 0 {
            // SAFETY: killpg has no memory-safety preconditions; a group that is already gone
            // gives ESRCH, which is what we want.
            unsafe {
                libc::killpg(self.pgid, libc::SIGKILL);
            }
        }
    }

    /// Waits up to `grace` for the leader to exit and be reaped.
    pub(crate) async fn wait_gone(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && pid_exists(self.pgid) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// True while `pid` names a process, zombies included.
fn pid_exists(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}
