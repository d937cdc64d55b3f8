//! Replays a fuzz target's committed seeds through its harness: shared by
//! every crate's `tests/fuzz_seeds.rs` (included by path, as those crates
//! have no test-support crate in common).

use std::path::Path;

/// Runs `run` on every file in `<crate>/fuzz/seeds/<target>/`; there must
/// be some.
pub fn replay(manifest_dir: &str, target: &str, run: fn(&[u8])) {
    let dir = Path::new(manifest_dir).join("fuzz/seeds").join(target);
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

/// One `#[test]` per target, named after it, replaying its seeds through
/// `harness::<run fn>`.
macro_rules! seed_tests {
    ($($target:ident => $run:ident),+ $(,)?) => {
        $(
            #[test]
            fn $target() {
                fuzz_replay::replay(env!("CARGO_MANIFEST_DIR"), stringify!($target), harness::$run);
            }
        )+
    };
}
