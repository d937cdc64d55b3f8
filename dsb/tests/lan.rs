//! OS mode (`dsb --lan`): two `dsb` processes, each with its own identity
//! and address, find each other through multicast on real sockets and move
//! a blob, inside a network namespace this test creates and removes (so no
//! datagram can leave this machine).

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use dsb_host::netns::Netns;

const DSB: &str = env!("CARGO_BIN_EXE_dsb");

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("dsb-lan-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn in_ns(ns: &Netns, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &ns.name, DSB]).args(args);
    c.env("DSOFTBUS_SEGMENT", "/nonexistent/segment")
        .env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c
}

fn run<S: AsRef<std::ffi::OsStr>>(ns: &Netns, args: &[S]) -> Output {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &ns.name, DSB]).args(args);
    c.env("DSOFTBUS_SEGMENT", "/nonexistent/segment")
        .env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c.output().expect("run dsb")
}

fn keygen(dir: &Path, id: &str) -> String {
    let f = dir.join(id);
    let o = Command::new(DSB)
        .args(["keygen", "-o", &f.display().to_string(), "--id", id])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    f.display().to_string()
}

/// Kills the server on drop (also when an assertion fails).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGINT);
        }
        let _ = self.0.wait();
    }
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout {}\nstderr {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn two_dsb_processes_find_each_other_and_move_a_blob_over_os_sockets() {
    let dir = tmp("blob");
    let server_id = keygen(&dir, "server");
    let client_id = keygen(&dir, "client");
    let ns = Netns::create();
    let server = Server(
        in_ns(
            &ns,
            &[
                "--lan",
                "--bind",
                "10.42.0.1",
                "--identity",
                &server_id,
                "serve",
                "--allow",
                "ping=*",
                "--allow",
                "sd=*",
                "--allow",
                "blob=client",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dsb serve"),
    );
    let client: Vec<String> = [
        "--lan",
        "--bind",
        "10.42.0.2",
        "--identity",
        client_id.as_str(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let with = |more: &[&str]| -> Vec<String> {
        client
            .iter()
            .cloned()
            .chain(more.iter().map(|s| s.to_string()))
            .collect()
    };

    // Discovery over multicast: the server is listed.
    let start = Instant::now();
    let o = loop {
        let o = run(&ns, &with(&["peers", "--json", "--wait", "1"]));
        if String::from_utf8_lossy(&o.stdout).contains("\"server\"")
            || start.elapsed() > Duration::from_secs(10)
        {
            break o;
        }
    };
    assert!(o.status.success(), "{}", text(&o));
    let peers: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let server_row = peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "server")
        .unwrap_or_else(|| panic!("{}", text(&o)));
    assert_eq!(server_row["address"], "10.42.0.1");

    let o = run(&ns, &with(&["ping", "server", "-c", "2"]));
    assert!(o.status.success(), "{}", text(&o));

    // A blob up and back, hash-checked.
    let file = dir.join("payload.bin");
    let data: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &data).unwrap();
    let o = run(
        &ns,
        &with(&["put", "server", &file.display().to_string(), "--json"]),
    );
    assert!(o.status.success(), "{}", text(&o));
    let back = dir.join("back.bin");
    let o = run(
        &ns,
        &with(&[
            "get",
            "server",
            "payload.bin",
            "-o",
            &back.display().to_string(),
        ]),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(std::fs::read(&back).unwrap() == data);

    // Another identity may not use the server's blob store: exit 3.
    let other = keygen(&dir, "stranger");
    let o = run(
        &ns,
        &[
            "--lan",
            "--bind",
            "10.42.0.2",
            "--identity",
            &other,
            "--tcp-port",
            "37121",
            "--udpsec-port",
            "37131",
            "put",
            "server",
            &file.display().to_string(),
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    drop(server);
    drop(ns);
    let _ = std::fs::remove_dir_all(&dir);
}
