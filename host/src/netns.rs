//! A throw-away network namespace for tests of OS mode (this crate's and
//! `dsb`'s): only `lo`, with multicast on, a route for 224.0.0.0/4 and the
//! addresses 10.42.0.1 and 10.42.0.2, so that two nodes can each bind their
//! own and no datagram can leave this machine. Needs root (CAP_SYS_ADMIN)
//! and iproute2; removed on drop, whatever happened.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A network namespace with only `lo`, removed on drop.
pub struct Netns {
    pub name: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// Creates `dsbtest-<pid>-<n>` and sets up `lo` in it; panics with one
    /// clear message when that is impossible (not root, no `ip`).
    pub fn create() -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "dsbtest-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        if let Err(e) = ip(&["netns", "add", &name]) {
            panic!(
                "cannot create network namespace {name} ({e}): the OS-mode tests need root \
                 (CAP_SYS_ADMIN) and iproute2 to keep every datagram on this machine"
            );
        }
        // From here on, drop removes it whatever happens.
        let ns = Netns { name };
        let n = ns.name.as_str();
        let setup = [
            &["-n", n, "link", "set", "lo", "up"][..],
            &["-n", n, "link", "set", "lo", "multicast", "on"],
            &["-n", n, "route", "add", "224.0.0.0/4", "dev", "lo"],
            &["-n", n, "addr", "add", "10.42.0.1/24", "dev", "lo"],
            &["-n", n, "addr", "add", "10.42.0.2/24", "dev", "lo"],
        ];
        for args in setup {
            if let Err(e) = ip(args) {
                panic!("cannot set up network namespace {n}: {e}");
            }
        }
        ns
    }

    /// Moves the calling thread (only it) into the namespace.
    pub fn enter(&self) {
        let path = format!("/run/netns/{}", self.name);
        let f = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: plain system call on a descriptor that stays open for it.
        let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("warning: {e}");
        }
    }
}

/// Runs `f` on a thread inside a fresh namespace, removes the namespace,
/// then returns `f`'s result or resumes its panic.
pub fn in_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    let ns = Netns::create();
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter();
            f()
        })
        .join()
    });
    drop(ns);
    r.unwrap_or_else(|p| std::panic::resume_unwind(p))
}
