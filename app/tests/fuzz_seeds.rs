//! The fuzz harnesses of `app/fuzz` built with the ordinary tests, so
//! they cannot drift from the code they drive (the fuzz crates build only
//! on nightly), and every committed seed (`fuzz/seeds/<target>/`: the
//! tests' own valid messages, plus any input that once crashed a target)
//! replayed through its harness with every assertion on.

#[allow(dead_code, unused_imports)]
#[path = "../fuzz/src/lib.rs"]
mod harness;

/// Runs `run` on every seed of `target`; there must be some.
fn replay(target: &str, run: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut seeds: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("seed entry").path())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    for seed in seeds {
        let data = std::fs::read(&seed).expect("seed readable");
        eprintln!("{target}: {}", seed.display());
        run(&data);
    }
}

#[test]
fn config_parse_seeds() {
    replay("config_parse", harness::run_config_parse);
}

#[test]
fn rpc_peer_seeds() {
    replay("rpc_peer", harness::run_rpc_peer);
}

#[test]
fn blob_server_seeds() {
    replay("blob_server", harness::run_blob_server);
}
