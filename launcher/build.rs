//! Builds the `corefit-preload` shim (a cdylib in this workspace) so the
//! `corefit` binary can carry it: `--socket inject` writes it to a sealed
//! memfd at run time, and there is nothing to install beside corefit.
//!
//! A nested `cargo build` into a target directory of its own (under
//! OUT_DIR, so it never waits on the outer build's lock), offline and
//! locked: the outer build already fetched everything the shim needs.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .expect("launcher/ has a parent")
        .to_path_buf();
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let target_dir = out.join("preload-target");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());

    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("preload/src").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("preload/Cargo.toml").display()
    );
    // The shim's one dependency besides libc.
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("sys/src").display()
    );

    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--lib",
        "--locked",
        "--offline",
        "-p",
        "corefit-preload",
    ])
    .arg("--manifest-path")
    .arg(workspace.join("Cargo.toml"))
    .arg("--target-dir")
    .arg(&target_dir);
    // The outer build's wrappers and flags (clippy, coverage) are not for the shim.
    for var in [
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo to build corefit-preload");
    assert!(
        status.success(),
        "building corefit-preload failed ({status})"
    );

    let so = target_dir.join("release/libcorefit_preload.so");
    assert!(so.exists(), "{} was not produced", so.display());
    println!("cargo:rustc-env=COREFIT_PRELOAD_SO={}", so.display());
}
