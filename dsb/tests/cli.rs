//! Every bad input gets one clear line and its documented exit code, never
//! a panic or a backtrace. Runs the real binary; needs no network (the
//! segment cases point at paths where nothing listens).

use std::process::{Command, Output};

fn dsb(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dsb"))
        .args(args)
        // No running segment unless a test says so.
        .env("DSOFTBUS_SEGMENT", "/nonexistent/dsoftbus/segment")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run dsb")
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("dsb-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Exit code and the one stderr line.
fn verdict(o: &Output) -> (Option<i32>, String) {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(!err.contains("RUST_BACKTRACE"), "backtrace hint: {err}");
    (o.status.code(), err)
}

fn one_line(err: &str) {
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    assert!(err.starts_with("dsb: "), "{err:?}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["ping"][..],
        &["frobnicate"],
        &["ping", "node-1", "-c", "0"],
        &["--timeout", "-1", "peers"],
        &["--segment", "udp:127.0.0.1:9", "peers"],
        &["--segment", "unix:", "peers"],
        &["--ip", "300.1.2.3/24", "peers"],
        &["ping", "bad id!"],
    ] {
        let (code, err) = verdict(&dsb(args));
        assert_eq!(code, Some(2), "{args:?}: {err}");
    }
    // Ours (not clap's) are one line.
    let (_, err) = verdict(&dsb(&["--segment", "udp:127.0.0.1:9", "peers"]));
    one_line(&err);
    assert!(err.contains("bad segment address"));
}

#[test]
fn help_and_version_exit_0_and_name_the_exit_codes() {
    let o = dsb(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("3 denied") && out.contains("4 unreachable"),
        "{out}"
    );
    for cmd in ["peers", "ping", "call", "put", "get", "serve", "keygen"] {
        let o = dsb(&[cmd, "--help"]);
        assert_eq!(o.status.code(), Some(0), "{cmd}");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Example"),
            "{cmd}: no example"
        );
    }
}

#[test]
fn no_segment_is_unreachable_and_says_how_to_start_one() {
    let (code, err) = verdict(&dsb(&["peers"]));
    assert_eq!(code, Some(4), "{err}");
    one_line(&err);
    assert!(err.contains("make run VMS=2"), "{err}");
    let (code, err) = verdict(&dsb(&["--segment", "unix:/nonexistent/port", "peers"]));
    assert_eq!(code, Some(4), "{err}");
    one_line(&err);
}

#[test]
fn bad_or_unreadable_key_files_are_one_line_errors() {
    let d = tmp("keys");
    let bad = d.join("bad.identity");
    std::fs::write(&bad, "not an identity\n").unwrap();
    // A descriptor whose port exists is not needed: the identity is read first.
    let seg = d.join("segment");
    std::fs::write(&seg, format!("port=unix:{}\n", d.join("port").display())).unwrap();
    let _sock = std::os::unix::net::UnixDatagram::bind(d.join("port")).unwrap();
    for (file, want) in [
        (bad.display().to_string(), "not a usable identity file"),
        (
            d.join("missing").display().to_string(),
            "cannot read identity file",
        ),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_dsb"))
            .args(["--identity", &file, "peers"])
            .env("DSOFTBUS_SEGMENT", &seg)
            .output()
            .unwrap();
        let (code, err) = verdict(&o);
        assert_eq!(code, Some(1), "{err}");
        one_line(&err);
        assert!(err.contains(want), "{err}");
        assert!(!err.contains("device-key-seed"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn keygen_writes_0600_never_prints_the_secret_and_refuses_to_overwrite() {
    use std::os::unix::fs::PermissionsExt;
    let d = tmp("keygen");
    let f = d.join("id");
    let fs = f.display().to_string();
    let o = dsb(&["keygen", "-o", &fs, "--id", "laptop"]);
    assert_eq!(o.status.code(), Some(0));
    let mode = std::fs::metadata(&f).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&f).unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    for line in text
        .lines()
        .filter(|l| l.starts_with("device-key-seed=") || l.starts_with("noise-static-secret="))
    {
        let secret = line.split('=').nth(1).unwrap();
        assert!(!out.contains(secret), "secret printed");
    }
    assert!(out.contains("trust=laptop:"));
    let (code, err) = verdict(&dsb(&["keygen", "-o", &fs]));
    assert_eq!(code, Some(1));
    one_line(&err);
    assert!(err.contains("--force"));
    let (code, _) = verdict(&dsb(&["keygen", "-o", &fs, "--id", "x y"]));
    assert_eq!(code, Some(2));
    let _ = std::fs::remove_dir_all(&d);
}
