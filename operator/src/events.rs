//! Events (`events.k8s.io/v1`) about an app. The reconciler emits them only
//! on transitions (a new decision, a newly invalid spec, a failure), so
//! each is created as its own object: kube-runtime's `Recorder` would fold
//! a second `DecisionChanged` into the first one's series and keep the
//! first one's note, hiding the new decision.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Normal,
    Warning,
}

/// The event object for `regarding`, pure: `now` is passed in.
pub fn event(
    regarding: &ObjectReference,
    severity: Severity,
    reason: &str,
    note: &str,
    reporter: &str,
    now: Timestamp,
) -> Event {
    let mut note = note.to_owned();
    if note.len() > 1000 {
        let mut cut = 1000;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
    }
    Event {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}.{:x}",
                regarding.name.as_deref().unwrap_or(reporter),
                now.as_nanosecond()
            )),
            namespace: regarding.namespace.clone(),
            ..ObjectMeta::default()
        },
        action: Some("Reconcile".to_owned()),
        reason: Some(reason.to_owned()),
        note: Some(note),
        type_: Some(
            match severity {
                Severity::Normal => "Normal",
                Severity::Warning => "Warning",
            }
            .to_owned(),
        ),
        event_time: Some(MicroTime(now)),
        regarding: Some(regarding.clone()),
        reporting_controller: Some(format!("corefit.dev/{reporter}")),
        reporting_instance: Some(reporter.to_owned()),
        ..Event::default()
    }
}

/// Creates the event.
pub async fn publish(client: &Client, ev: &Event) -> Result<(), kube::Error> {
    let ns = ev.metadata.namespace.as_deref().unwrap_or("default");
    Api::<Event>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), ev)
        .await
        .map(|_| ())
}
