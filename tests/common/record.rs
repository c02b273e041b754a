//! The reliability recorder now lives in `corefit-test-support`
//! (`corefit_test_support::record`); this file re-exports it for the test
//! files that still include it by `#[path]`.

#![allow(unused_imports)]

pub use corefit_test_support::record::{record, OUT_VAR};
