//! The image entry point. Only meaningful for `x86_64-unknown-none`.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("dsoftbus: this binary is the x86_64-unknown-none image; build it with `make image`");
    std::process::exit(2);
}
