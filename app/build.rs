//! Links the image with `linker.ld` (PVH note kept, loaded at 1 MiB), but only
//! for the `x86_64-unknown-none` target: host builds stay ordinary binaries.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=linker.ld");
    let target = env::var("TARGET").unwrap_or_default();
    if target == "x86_64-unknown-none" {
        let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
        let script = dir.join("linker.ld");
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    }
}
