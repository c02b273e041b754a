//! What a reconcile can fail with.

use thiserror::Error;

use crate::desired::DesiredError;
use crate::discovery::DiscoveryError;
use crate::validate::SpecError;

#[derive(Debug, Error)]
pub enum Error {
    #[error("invalid spec: {0}")]
    InvalidSpec(#[source] SpecError),
    #[error("{0}")]
    Metadata(#[source] DesiredError),
    #[error("applying {kind} {name}: {source}")]
    Apply {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("patching the status of {name}: {source}")]
    Status {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("{kind} {name}: {source}")]
    Optional {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    #[error("the {0} cache stopped")]
    CacheGone(&'static str),
    #[error("cannot serialize {0}: {1}")]
    Serialize(&'static str, #[source] serde_json::Error),
}

impl Error {
    /// The `reason` label of the error metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::InvalidSpec(e) => e.reason(),
            Error::Metadata(_) => "MissingMetadata",
            Error::Apply { .. } => "ApplyFailed",
            Error::Status { .. } => "StatusFailed",
            Error::Optional { .. } => "ApplyFailed",
            Error::Discovery(_) => "DiscoveryFailed",
            Error::CacheGone(_) => "CacheGone",
            Error::Serialize(..) => "SerializeFailed",
        }
    }
}
