//! "Does the object already say what we would apply?" A desired object
//! matches an observed one when every field the desired one sets has the
//! same value in the observed one. Fields the API server fills in
//! (defaults, clusterIP, status...) are ignored; lists must match item by
//! item. This is how the reconciler skips writes when nothing changed.

use serde_json::Value;

/// True when every field set in `desired` has the same value in `observed`.
pub fn contains(observed: &Value, desired: &Value) -> bool {
    match (observed, desired) {
        (Value::Object(o), Value::Object(d)) => d
            .iter()
            .all(|(k, dv)| o.get(k).is_some_and(|ov| contains(ov, dv)) || is_empty(dv)),
        (Value::Array(o), Value::Array(d)) => {
            o.len() == d.len() && o.iter().zip(d).all(|(ov, dv)| contains(ov, dv))
        }
        (o, d) => o == d,
    }
}

/// Empty maps, lists and nulls in `desired` say nothing.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.values().all(is_empty),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_on_the_server_are_ignored() {
        let observed = json!({"spec": {"replicas": 2, "clusterIP": "10.96.0.1",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}});
        assert!(contains(
            &observed,
            &json!({"spec": {"replicas": 2, "ports": [{"port": 80}]}})
        ));
        assert!(contains(&observed, &json!({"spec": {"extra": {}}})));
    }

    #[test]
    fn changes_are_seen() {
        let observed = json!({"spec": {"replicas": 2, "ports": [{"port": 80}, {"port": 81}]}});
        assert!(!contains(&observed, &json!({"spec": {"replicas": 3}})));
        assert!(!contains(
            &observed,
            &json!({"spec": {"ports": [{"port": 80}]}})
        ));
        assert!(!contains(&observed, &json!({"spec": {"image": "x"}})));
        assert!(!contains(&json!(null), &json!({"spec": {"replicas": 1}})));
    }
}
