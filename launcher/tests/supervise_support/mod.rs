//! The launcher's test support now lives in the `corefit-test-support`
//! crate; this module re-exports it for the test files that still say
//! `mod supervise_support;` (proxy_limits.rs, proxy_differential.rs).

#![allow(dead_code, unused_imports)]

pub use corefit_test_support::prelude::*;

pub const COREFIT: &str = env!("CARGO_BIN_EXE_corefit");
