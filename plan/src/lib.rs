//! The decision: pure functions over plain data.
//!
//! - [`facts`]: what the probes found (CPU, memory, platform).
//! - [`overrides`]: what the user asked for, with its precedence.
//! - [`decide`]: the matrix, `plan(&Limits, &Platform, &Overrides) -> Plan`.
//! - [`worker_env`]: the environment each worker gets.
//! - [`size`]: memory sizes as users write them.
//! - [`redact`]: secret-looking variables' values, never printed.

pub mod decide;
pub mod facts;
pub mod overrides;
pub mod redact;
pub mod size;
pub mod worker_env;

pub use decide::{plan, Mode, Plan, Scaling};
pub use facts::{Limits, Platform, PlatformKind};
pub use overrides::{resolve, Env, FlagValues, OverrideError, Overrides};
