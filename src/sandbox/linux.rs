//! Confining one child process on Linux, in `pre_exec`.
//!
//! Shape: `pre_exec` runs in the forked child (the "outer"). It enters new user, mount and PID
//! namespaces (`unshare`), maps its own uid/gid into the user namespace, and forks once more,
//! because a new PID namespace applies to children only. The inner child is pid 1 of the new
//! namespace: it asks to be killed with its parent (`PR_SET_PDEATHSIG`), makes the mount tree
//! private, mounts a fresh `/proc` (so no other process's `/proc/<pid>/environ` is visible),
//! binds the job store read-only, hides the dotenv files under `/dev/null`, binds the private
//! temp directory over `/tmp` (when the workspace is not itself under `/tmp`), then sets
//! `no_new_privs`, Landlock and, last, seccomp, and returns so the standard library execs the
//! program. Mounts come before Landlock (which forbids topology changes afterwards), seccomp
//! comes last. When pid 1 exits the kernel kills everything left in its namespace, so nothing
//! a tool starts (`setsid -f sleep 300` included) outlives it.
//!
//! The outer closes every descriptor above stderr (so the standard library's exec-error pipe
//! only waits for the inner), waits for the inner and exits with its status; a signal death is
//! re-raised so callers see "killed by signal N". Killing the process group kills both, since
//! the inner stays in the outer's group.
//!
//! Between fork and exec only async-signal-safe system calls are allowed: everything that
//! allocates (paths as C strings, the uid map text, the Landlock ruleset, the seccomp BPF
//! program) is built by [`Prepared::new`] before the spawn and only read in the closure.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use landlock::{
    ABI, Access, AccessFs, AccessNet, NetPort, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, Scope,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::check::SandboxError;
use super::policy::SandboxPolicy;

/// Device files any program may write (shell redirections, random numbers).
const WRITABLE_DEVICES: [&str; 6] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

/// Everything the child needs, built before the fork.
pub struct Prepared {
    setgroups_path: CString,
    uid_map_path: CString,
    gid_map_path: CString,
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
    root: CString,
    proc_dir: CString,
    proc_type: CString,
    dev_null: CString,
    /// (private temp dir, "/tmp") when it is bound over /tmp.
    tmp_bind: Option<(CString, CString)>,
    /// Paths bound read-only, with the flags their mount already has (a remount must keep
    /// them or the kernel refuses it inside a user namespace).
    read_only: Vec<(CString, libc::c_ulong)>,
    hidden: Vec<CString>,
    landlock: OwnedFd,
    seccomp: BpfProgram,
}

impl Prepared {
    /// Builds the confinement of one process. `tmp` is its private temp directory (already
    /// created); `proxy_port` the only TCP port it may connect to. Returns the value `TMPDIR`
    /// should have inside.
    pub fn new(
        policy: &SandboxPolicy,
        tmp: &Path,
        proxy_port: Option<u16>,
        landlock_abi: u32,
    ) -> Result<(Self, PathBuf), SandboxError> {
        let setup =
            |what: &str, e: &dyn std::fmt::Display| SandboxError::Setup(format!("{what}: {e}"));
        // Binding over /tmp would hide a workspace that lives there.
        let under_tmp = |p: &PathBuf| p.starts_with("/tmp") && !p.starts_with(tmp);
        let bind_tmp = !policy
            .writable_paths
            .iter()
            .chain(&policy.read_only_paths)
            .chain(&policy.hidden_paths)
            .any(under_tmp)
            && Path::new("/tmp").is_dir();
        let tmp_inside = if bind_tmp {
            PathBuf::from("/tmp")
        } else {
            tmp.to_path_buf()
        };
        let tmp_bind = if bind_tmp {
            Some((c_path(tmp)?, c_path(Path::new("/tmp"))?))
        } else {
            None
        };
        let mut read_only = Vec::new();
        for path in &policy.read_only_paths {
            if path.is_dir() {
                read_only.push((c_path(path)?, mount_flags(path)));
            }
        }
        let mut hidden = Vec::new();
        for path in &policy.hidden_paths {
            if path.is_file() {
                hidden.push(c_path(path)?);
            }
        }
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let mut writable = policy.writable_paths.clone();
        writable.push(tmp.to_path_buf());
        let landlock = landlock_ruleset(&writable, proxy_port, landlock_abi)
            .map_err(|e| setup("building the Landlock rules", &e))?;
        let seccomp = socket_filter().map_err(|e| setup("building the seccomp filter", &e))?;
        let prepared = Prepared {
            setgroups_path: c_str("/proc/self/setgroups"),
            uid_map_path: c_str("/proc/self/uid_map"),
            gid_map_path: c_str("/proc/self/gid_map"),
            uid_map: format!("{uid} {uid} 1\n").into_bytes(),
            gid_map: format!("{gid} {gid} 1\n").into_bytes(),
            root: c_str("/"),
            proc_dir: c_str("/proc"),
            proc_type: c_str("proc"),
            dev_null: c_str("/dev/null"),
            tmp_bind,
            read_only,
            hidden,
            landlock,
            seccomp,
        };
        Ok((prepared, tmp_inside))
    }
}

/// Adds the confinement to `command`; it runs after the command's other `pre_exec` steps.
pub fn confine(command: &mut std::process::Command, prepared: Arc<Prepared>) {
    // SAFETY: the closure only makes async-signal-safe system calls on data built before the
    // fork (see the module comment) and never returns in the outer process.
    unsafe {
        command.pre_exec(move || enter(&prepared));
    }
}

fn enter(p: &Prepared) -> io::Result<()> {
    let flags = libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID;
    // SAFETY: plain system calls on pointers to data that lives as long as `p`.
    unsafe {
        check(libc::unshare(flags))?;
        write_file(&p.setgroups_path, b"deny")?;
        write_file(&p.uid_map_path, &p.uid_map)?;
        write_file(&p.gid_map_path, &p.gid_map)?;
        let pid = libc::fork();
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid > 0 {
            wait_and_exit(pid);
        }
        inner(p)
    }
}

/// The outer process: wait for pid 1 of the namespace and leave with its status.
unsafe fn wait_and_exit(pid: libc::pid_t) -> ! {
    // SAFETY: close_range, waitpid, signal, kill and _exit are async-signal-safe.
    unsafe {
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
            for fd in 3..1024 {
                libc::close(fd);
            }
        }
        let mut status = 0;
        loop {
            if libc::waitpid(pid, &mut status, 0) == pid {
                break;
            }
            if *libc::__errno_location() != libc::EINTR {
                libc::_exit(127);
            }
        }
        if libc::WIFSIGNALED(status) {
            let signal = libc::WTERMSIG(status);
            libc::signal(signal, libc::SIG_DFL);
            libc::kill(libc::getpid(), signal);
            libc::_exit(128 + signal);
        }
        libc::_exit(libc::WEXITSTATUS(status));
    }
}

/// pid 1 of the new namespace: mounts, then Landlock, then seccomp.
unsafe fn inner(p: &Prepared) -> io::Result<()> {
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY: plain system calls on pointers to data that lives as long as `p`.
    unsafe {
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL))?;
        check(libc::mount(
            null,
            p.root.as_ptr(),
            null,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        check(libc::mount(
            p.proc_type.as_ptr(),
            p.proc_dir.as_ptr(),
            p.proc_type.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        ))?;
        if let Some((private, tmp)) = &p.tmp_bind {
            check(libc::mount(
                private.as_ptr(),
                tmp.as_ptr(),
                null,
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ))?;
        }
        for (path, kept) in &p.read_only {
            check(libc::mount(
                path.as_ptr(),
                path.as_ptr(),
                null,
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ))?;
            check(libc::mount(
                null,
                path.as_ptr(),
                null,
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | kept,
                std::ptr::null(),
            ))?;
        }
        for path in &p.hidden {
            check(libc::mount(
                p.dev_null.as_ptr(),
                path.as_ptr(),
                null,
                libc::MS_BIND,
                std::ptr::null(),
            ))?;
        }
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
        check(libc::syscall(
            libc::SYS_landlock_restrict_self,
            p.landlock.as_raw_fd(),
            0u32,
        ) as libc::c_int)?;
        let program = libc::sock_fprog {
            len: p.seccomp.len() as libc::c_ushort,
            filter: p.seccomp.as_ptr() as *mut libc::sock_filter,
        };
        check(libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0u32,
            &program as *const libc::sock_fprog,
        ) as libc::c_int)?;
    }
    Ok(())
}

fn check(result: libc::c_int) -> io::Result<()> {
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// open + write + close, all async-signal-safe.
unsafe fn write_file(path: &CString, data: &[u8]) -> io::Result<()> {
    // SAFETY: valid C string and buffer.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let written = libc::write(fd, data.as_ptr().cast(), data.len());
        let error = io::Error::last_os_error();
        libc::close(fd);
        if written != data.len() as isize {
            return Err(error);
        }
    }
    Ok(())
}

fn c_str(text: &str) -> CString {
    // The literals above contain no NUL byte.
    CString::new(text).unwrap_or_default()
}

fn c_path(path: &Path) -> Result<CString, SandboxError> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| SandboxError::Setup(format!("path {} contains a NUL byte", path.display())))
}

/// The flags of the mount `path` is on, as `mount(2)` flags: a bind remount inside a user
/// namespace must keep the locked ones.
fn mount_flags(path: &Path) -> libc::c_ulong {
    let Ok(c) = c_path(path) else { return 0 };
    // SAFETY: statvfs writes into the zeroed struct we own.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut stat) } != 0 {
        return 0;
    }
    locked_flags(stat.f_flag)
}

/// `statvfs` flags to the `mount(2)` flags a remount must keep.
fn locked_flags(st_flags: libc::c_ulong) -> libc::c_ulong {
    let pairs = [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ];
    pairs
        .iter()
        .filter(|(st, _)| st_flags & st != 0)
        .fold(0, |acc, (_, ms)| acc | ms)
}

/// Read and execute everywhere; write below `writable` and to a few devices; TCP connect only
/// to the proxy's port; no signals or abstract sockets outside the sandbox (ABI 6+).
fn landlock_ruleset(
    writable: &[PathBuf],
    proxy_port: Option<u16>,
    kernel_abi: u32,
) -> Result<OwnedFd, Box<dyn std::error::Error>> {
    let abi = ABI::from(i32::try_from(kernel_abi).unwrap_or(i32::MAX));
    let all = AccessFs::from_all(abi);
    let read = AccessFs::from_read(abi);
    let mut device = AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate;
    if abi >= ABI::V5 {
        device |= AccessFs::IoctlDev;
    }
    let mut ruleset = Ruleset::default()
        .handle_access(all)?
        .handle_access(AccessNet::ConnectTcp)?;
    if abi >= ABI::V6 {
        ruleset = ruleset.scope(Scope::AbstractUnixSocket | Scope::Signal)?;
    }
    let mut created = ruleset
        .create()?
        .add_rule(PathBeneath::new(PathFd::new("/")?, read))?;
    for path in writable {
        if path.is_dir() {
            created = created.add_rule(PathBeneath::new(PathFd::new(path)?, all))?;
        }
    }
    for device_path in WRITABLE_DEVICES {
        if let Ok(fd) = PathFd::new(device_path) {
            created = created.add_rule(PathBeneath::new(fd, device & all))?;
        }
    }
    if let Some(port) = proxy_port {
        created = created.add_rule(NetPort::new(port, AccessNet::ConnectTcp))?;
    }
    let fd: Option<OwnedFd> = created.into();
    fd.ok_or_else(|| "this kernel does not support Landlock".into())
}

/// Sockets: `AF_UNIX` of any type, `AF_INET`/`AF_INET6` of type stream only; every other
/// family (netlink, packet, ...) and UDP or raw sockets fail with EPERM. io_uring, which could
/// open sockets past this filter, is refused too.
fn socket_filter() -> Result<BpfProgram, Box<dyn std::error::Error>> {
    let arg = |index, op, value| SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, value);
    let unix = libc::AF_UNIX as u64;
    let inet = [libc::AF_INET as u64, libc::AF_INET6 as u64];
    let mut socket_rules = vec![SeccompRule::new(vec![
        arg(0, SeccompCmpOp::Ne, unix)?,
        arg(0, SeccompCmpOp::Ne, inet[0])?,
        arg(0, SeccompCmpOp::Ne, inet[1])?,
    ])?];
    for family in inet {
        for kind in 0..16u64 {
            if kind != libc::SOCK_STREAM as u64 {
                socket_rules.push(SeccompRule::new(vec![
                    arg(0, SeccompCmpOp::Eq, family)?,
                    arg(1, SeccompCmpOp::MaskedEq(0xf), kind)?,
                ])?);
            }
        }
    }
    let mut rules = BTreeMap::new();
    rules.insert(libc::SYS_socket, socket_rules);
    rules.insert(libc::SYS_io_uring_setup, Vec::new());
    let arch = TargetArch::try_from(std::env::consts::ARCH)?;
    SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )?
    .try_into()
    .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_filter_compiles_for_this_machine() {
        let program = socket_filter().expect("filter");
        assert!(program.len() > 30, "{} instructions", program.len());
    }

    #[test]
    fn the_landlock_ruleset_is_built_from_paths() {
        let dir = std::env::temp_dir();
        let fd = landlock_ruleset(&[dir], Some(8080), 4).expect("ruleset");
        assert!(fd.as_raw_fd() > 2);
    }

    #[test]
    fn locked_mount_flags_are_kept_and_read_only_is_not() {
        let flags = locked_flags(libc::ST_NOSUID | libc::ST_NODEV | libc::ST_RDONLY);
        assert_eq!(flags, libc::MS_NOSUID | libc::MS_NODEV);
        assert_eq!(locked_flags(libc::ST_RELATIME), libc::MS_RELATIME);
        assert_eq!(locked_flags(0), 0);
        // A path that does not exist has no mount to keep flags of.
        assert_eq!(mount_flags(Path::new("/nonexistent-perstack-path")), 0);
    }
}
