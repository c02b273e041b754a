//! Which workers a message of socket.io's cluster adapter goes to, as
//! `setupPrimary()` of `@socket.io/cluster-adapter` decides in Node's
//! cluster primary. Pure: lines in, recipients out.
//!
//! - A message is one JSON line with `"source":"_sio_adapter"` and a
//!   numeric `type`. Responses (`FETCH_SOCKETS_RESPONSE` 9,
//!   `SERVER_SIDE_EMIT_RESPONSE` 11) go to the worker whose id is
//!   `data.workerId`; everything else goes to every other worker.
//! - Worker ids are the adapter's `cluster.worker.id`, learned from what a
//!   channel sends (`WORKER_INIT`/`WORKER_PING` carry the sender's id in
//!   `data`, requests in `data.workerId`); when a channel closes, every
//!   other worker is told `WORKER_EXIT` for its ids, as the primary does
//!   on a worker's exit.
//! - Other JSON (an app's own `process.send`, `'ready'`) is not the
//!   adapter's: ignored. Bytes that are not JSON, or an adapter message
//!   without a numeric type, are garbage (counted by the caller).

use std::collections::BTreeMap;

use serde_json::Value;

/// The adapter's marker.
pub const SOURCE: &str = "_sio_adapter";

const WORKER_INIT: u64 = 1;
const WORKER_PING: u64 = 2;
const WORKER_EXIT: u64 = 3;
const FETCH_SOCKETS: u64 = 8;
const FETCH_SOCKETS_RESPONSE: u64 = 9;
const SERVER_SIDE_EMIT: u64 = 10;
const SERVER_SIDE_EMIT_RESPONSE: u64 = 11;

/// Ids remembered per channel, at most (a worker has one; a channel
/// claiming more is not believed past this).
pub const IDS_PER_CHANNEL: usize = 8;

/// One worker's IPC channel, numbered by the caller.
pub type Channel = u64;

/// What to do with one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send the line, as it is, to these channels (maybe none).
    Deliver(Vec<Channel>),
    /// Not the adapter's.
    Ignore,
    /// Not a message: why.
    Garbage(&'static str),
}

/// The open channels and the worker ids each has shown.
#[derive(Debug, Default)]
pub struct Router {
    channels: BTreeMap<Channel, Vec<Value>>,
}

impl Router {
    pub fn opened(&mut self, ch: Channel) {
        self.channels.entry(ch).or_default();
    }

    /// Where a line from `from` goes.
    pub fn route(&mut self, from: Channel, line: &[u8]) -> Verdict {
        let Ok(message) = serde_json::from_slice::<Value>(line) else {
            return Verdict::Garbage("not JSON");
        };
        let Some(fields) = message.as_object() else {
            return Verdict::Ignore;
        };
        if fields.get("source").and_then(Value::as_str) != Some(SOURCE) {
            return Verdict::Ignore;
        }
        let Some(kind) = fields.get("type").and_then(Value::as_u64) else {
            return Verdict::Garbage("an adapter message without a numeric type");
        };
        let data = fields.get("data");
        match kind {
            WORKER_INIT | WORKER_PING => self.learn(from, data),
            FETCH_SOCKETS | SERVER_SIDE_EMIT => {
                self.learn(from, data.and_then(|d| d.get("workerId")))
            }
            _ => {}
        }
        let to: Vec<Channel> = match kind {
            FETCH_SOCKETS_RESPONSE | SERVER_SIDE_EMIT_RESPONSE => {
                let want = data.and_then(|d| d.get("workerId")).and_then(id_key);
                self.channels
                    .iter()
                    .filter(|(_, ids)| want.is_some() && ids.iter().any(|i| id_key(i) == want))
                    .map(|(&ch, _)| ch)
                    .take(1)
                    .collect()
            }
            _ => self
                .channels
                .keys()
                .copied()
                .filter(|&c| c != from)
                .collect(),
        };
        Verdict::Deliver(to)
    }

    /// Channel `ch` closed: the lines telling every other worker that its
    /// workers exited.
    pub fn closed(&mut self, ch: Channel) -> Vec<(Vec<Channel>, Vec<u8>)> {
        let ids = self.channels.remove(&ch).unwrap_or_default();
        let others: Vec<Channel> = self.channels.keys().copied().collect();
        ids.into_iter()
            .map(|id| {
                let exit = serde_json::json!({ "source": SOURCE, "type": WORKER_EXIT, "data": id });
                (others.clone(), exit.to_string().into_bytes())
            })
            .collect()
    }

    fn learn(&mut self, ch: Channel, id: Option<&Value>) {
        let Some(id) = id.filter(|v| id_key(v).is_some()) else {
            return;
        };
        let Some(ids) = self.channels.get_mut(&ch) else {
            return;
        };
        if ids.iter().any(|known| id_key(known) == id_key(id)) {
            return;
        }
        if ids.len() >= IDS_PER_CHANNEL {
            ids.remove(0);
        }
        ids.push(id.clone());
    }
}

/// An id as Node's primary compares them (object keys: `"" + id`).
fn id_key(id: &Value) -> Option<String> {
    match id {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u64, data: &str) -> Vec<u8> {
        format!(r#"{{"type":{kind},"data":{data},"source":"_sio_adapter","nsp":"/"}}"#).into_bytes()
    }

    fn router(channels: &[Channel]) -> Router {
        let mut r = Router::default();
        for &c in channels {
            r.opened(c);
        }
        r
    }

    #[test]
    fn broadcasts_go_to_every_other_worker() {
        let mut r = router(&[1, 2, 3]);
        assert_eq!(
            r.route(2, &msg(4, r#"{"packet":{}}"#)),
            Verdict::Deliver(vec![1, 3])
        );
        assert_eq!(r.route(1, &msg(1, "101")), Verdict::Deliver(vec![2, 3]));
        let alone = &mut router(&[1]);
        assert_eq!(alone.route(1, &msg(4, "{}")), Verdict::Deliver(vec![]));
    }

    #[test]
    fn responses_go_to_the_requester_by_its_id() {
        let mut r = router(&[1, 2, 3]);
        r.route(1, &msg(1, "101"));
        r.route(2, &msg(2, "\"202\""));
        // A request teaches its sender's id too.
        r.route(3, &msg(8, r#"{"requestId":"a","workerId":303}"#));
        for (id, ch) in [("101", 1), ("202", 2), ("\"303\"", 3)] {
            let response = msg(9, &format!(r#"{{"requestId":"a","workerId":{id}}}"#));
            assert_eq!(r.route(2, &response), Verdict::Deliver(vec![ch]), "{id}");
        }
        let unknown = msg(11, r#"{"requestId":"a","workerId":999}"#);
        assert_eq!(r.route(2, &unknown), Verdict::Deliver(vec![]));
        assert_eq!(r.route(2, &msg(11, "{}")), Verdict::Deliver(vec![]));
    }

    #[test]
    fn a_closed_channel_becomes_worker_exit_for_the_others() {
        let mut r = router(&[1, 2, 3]);
        r.route(2, &msg(1, "7"));
        let exits = r.closed(2);
        assert_eq!(exits.len(), 1);
        assert_eq!(exits[0].0, vec![1, 3]);
        let line: Value = serde_json::from_slice(&exits[0].1).unwrap();
        assert_eq!(
            line,
            serde_json::json!({"source": "_sio_adapter", "type": 3, "data": 7})
        );
        // Its id no longer receives responses; a silent channel exits quietly.
        assert_eq!(
            r.route(1, &msg(9, r#"{"workerId":7}"#)),
            Verdict::Deliver(vec![])
        );
        assert!(r.closed(3).is_empty());
        assert!(r.closed(42).is_empty());
    }

    #[test]
    fn hostile_lines_are_garbage_or_ignored_never_a_panic() {
        let mut r = router(&[1, 2]);
        assert_eq!(r.route(1, b"\xff\xfe"), Verdict::Garbage("not JSON"));
        assert_eq!(r.route(1, b"{\"source\":"), Verdict::Garbage("not JSON"));
        assert!(matches!(
            r.route(1, br#"{"source":"_sio_adapter","type":"4"}"#),
            Verdict::Garbage(_)
        ));
        assert_eq!(r.route(1, b"\"ready\""), Verdict::Ignore);
        assert_eq!(r.route(1, br#"{"cmd":"NODE_HANDLE"}"#), Verdict::Ignore);
        assert_eq!(r.route(1, b"[1,2]"), Verdict::Ignore);
        // Ids that are not numbers or strings are not learned; a channel
        // claiming many keeps only the last few.
        r.route(1, &msg(1, "{}"));
        for i in 0..100 {
            r.route(1, &msg(2, &i.to_string()));
        }
        assert_eq!(r.channels[&1].len(), IDS_PER_CHANNEL);
        assert_eq!(r.closed(1).len(), IDS_PER_CHANNEL);
    }
}
