//! # corefit-operator
//!
//! Reconciles `ClusterApp` (`corefit.dev/v1alpha1`) into a Deployment and a
//! Service whose pods run the app under the corefit launcher, with the
//! decision (single or cluster, workers per pod) handed over as
//! `COREFIT_MODE` / `COREFIT_WORKERS`; plus an HPA (with
//! `scaling.autoscaling`) and a PDB (from 2 pods), in the versions the
//! cluster serves. With leader election, only the Lease holder reconciles.
//!
//! ## Theory of operation
//!
//! ```text
//!  watch ClusterApp ─┐
//!  watch Deployment ─┼─▶ Controller ─▶ reconcile(app) ─────────────────────────┐
//!  watch Service   ──┘   (reflector caches)  │                                 │
//!                                            ▼ pure, no I/O                    │
//!            validate::check ─▶ decide::decide ─▶ desired::desired ─▶ status::next_status
//!                 │              (corefit_plan)         │                      │
//!                 ▼                                     ▼                      ▼
//!        Degraded + event,            SSA apply only if the cache      status SSA only
//!        requeue with backoff         lacks a field (compare)          if it changed
//! ```
//!
//! - [`types`]: the resource and its schema; [`crd`] renders the CRD.
//! - [`validate`]: what the schema cannot check, as [`validate::SpecError`].
//! - [`decide`]: strategy -> decision through the launcher's own decision
//!   matrix, the `corefit-plan` crate (pure; the one matrix both crates
//!   use), fed the pod's resources as they are (`plan_for_pod`).
//! - [`desired`]: the Deployment and Service an app should have, and
//!   through [`autoscale`] its HPA and PDB, and who owns the replica count
//!   (with the HPA, the operator hands `spec.replicas` over and stops
//!   applying it).
//! - [`discovery`]: `autoscaling/v2` or `v2beta2`, `policy/v1` or
//!   `v1beta1`, from `GET /apis`.
//! - [`status`]: the next status and its conditions.
//! - [`compare`]: "does the cluster already say this?", to skip writes.
//! - [`backoff`]: per-object requeue delays for failures.
//! - [`events`]: the events it records on transitions.
//! - [`reconcile`]: the edge that reads caches and writes: one app's
//!   pass (`app`), each guarded write (`write`), the shared `Context`.
//! - [`leader`]: the Lease (kube-lease-manager): standby until it holds
//!   it, release on shutdown, stop and exit when it loses it.
//! - [`metrics`], [`server`], [`cli`], [`run`]: the process around it.
//!
//! Guarantees: nothing is written when nothing changed (children are
//! compared with the cache, the status with the stored one); every write
//! uses the field manager `corefit-operator`; the children carry a
//! controller owner reference, so deleting an app lets the garbage
//! collector remove them; an invalid spec never stops the operator: it
//! becomes a `Degraded` condition and one event per distinct problem, and
//! is retried with a delay that doubles up to 5 minutes.
//!
//! Caveats: HPAs and PDBs are not watched, only read when their app is
//! reconciled, so a hand-deleted one returns on the app's next change. A
//! hand edit of a field the operator does not set is kept; a
//! hand edit of a field it sets is undone on the app's next reconcile
//! (which the edit itself triggers through the watch).

pub mod autoscale;
pub mod backoff;
pub mod cli;
pub mod compare;
pub mod crd;
pub mod decide;
pub mod desired;
pub mod discovery;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod quantity;
pub mod reconcile;
pub mod run;
pub mod server;
pub mod status;
pub mod types;
pub mod validate;
