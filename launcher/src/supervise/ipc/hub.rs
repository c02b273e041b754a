//! The relay's effects: one reading task per worker's IPC channel, which
//! splits lines (bounded), asks the [`Router`] where each goes and queues
//! it to those workers' writing tasks; the preload file in a private
//! directory. A worker that does not read its channel loses messages once
//! its queue is full; nothing a worker sends can stop the relay.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::task::JoinHandle;

use super::node::{node_options, PRELOAD_FILE, PRELOAD_JS};
use super::route::{Channel, Router, Verdict};
use crate::supervise::machine::{Event, WorkerId};
use crate::supervise::net::readiness::{ipc_line_says_ready, IpcLines};
use crate::supervise::report::logs::Logger;

/// The longest line relayed: socket.io's default largest message is
/// 1 MB (`maxHttpBufferSize`), and a broadcast carries it as JSON.
pub const MAX_LINE: usize = 4 << 20;

/// Lines queued for one worker, at most; more are dropped.
pub const QUEUE: usize = 1024;

/// Bytes queued for one worker, at most; more are dropped.
pub const QUEUE_BYTES: usize = 16 << 20;

/// One worker's queue: the sender and the bytes waiting in it.
#[derive(Debug)]
struct Queue {
    tx: mpsc::Sender<Bytes>,
    bytes: Arc<AtomicUsize>,
}

/// The relay between the Node workers of one run.
#[derive(Debug, Clone)]
pub struct Hub {
    shared: Arc<Mutex<State>>,
    logger: Logger,
    /// The preloaded module (its directory is removed with the last clone).
    preload: Option<(PathBuf, Arc<tempfile::TempDir>)>,
}

#[derive(Debug, Default)]
struct State {
    router: Router,
    queues: BTreeMap<Channel, Queue>,
    next: Channel,
    /// Lines dropped: not JSON, longer than [`MAX_LINE`], or a full queue.
    garbage: u64,
    oversized: u64,
    overflowed: u64,
}

impl Hub {
    /// A relay; the preload module is written to a private directory (if
    /// that fails, workers run without it and the adapter cannot start).
    pub fn new(logger: Logger) -> Hub {
        let preload = write_preload()
            .map_err(|e| {
                logger.warn(&format!(
                    "socket.io relay: cannot write the preload module ({e}); workers get no cluster.worker"
                ))
            })
            .ok();
        Hub {
            shared: Arc::default(),
            logger,
            preload,
        }
    }

    /// Adds the preload to a worker's environment (`env`: what corefit
    /// sets on top of its own).
    pub fn prepare(&self, env: &mut BTreeMap<String, String>) {
        let Some((path, _)) = &self.preload else {
            return;
        };
        let inherited = std::env::var("NODE_OPTIONS").ok();
        match node_options(
            env.get("NODE_OPTIONS").map(String::as_str),
            inherited.as_deref(),
            path,
        ) {
            Ok(value) => {
                env.insert("NODE_OPTIONS".into(), value);
            }
            Err(e) => self.logger.warn(&format!("socket.io relay: {e}")),
        }
    }

    /// Relays worker `id`'s channel (`parent`: corefit's end) until it
    /// closes; with `ready`, its `process.send('ready')` reports `Ready`.
    pub fn attach(
        &self,
        parent: std::os::unix::net::UnixStream,
        id: WorkerId,
        pid: i32,
        ready: bool,
        events: UnboundedSender<Event>,
    ) -> io::Result<JoinHandle<()>> {
        parent.set_nonblocking(true)?;
        let (mut reader, mut writer) = tokio::net::UnixStream::from_std(parent)?.into_split();
        let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        let ch = {
            let mut s = lock(&self.shared);
            s.next += 1;
            let ch = s.next;
            s.router.opened(ch);
            s.queues.insert(
                ch,
                Queue {
                    tx,
                    bytes: queued.clone(),
                },
            );
            ch
        };
        tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                if writer.write_all(&line).await.is_err() {
                    return;
                }
                queued.fetch_sub(line.len(), Ordering::AcqRel);
            }
        });
        let hub = self.clone();
        Ok(tokio::spawn(async move {
            let mut lines = IpcLines::new(MAX_LINE);
            let mut chunk = vec![0u8; 64 * 1024];
            let mut told = !ready;
            let mut take = |line: &[u8]| {
                if !told && ipc_line_says_ready(line) {
                    told = true;
                    let _ = events.send(Event::Ready { id, pid });
                    return;
                }
                hub.relay(ch, id, line);
            };
            while let Ok(n @ 1..) = reader.read(&mut chunk).await {
                let mut whole = 0;
                lines.push(&chunk[..n], |line| {
                    whole += 1;
                    take(line);
                });
                // Every newline ends a line; those not handed out were too long.
                let ended = chunk[..n].iter().filter(|&&b| b == b'\n').count();
                if ended > whole {
                    hub.count(
                        id,
                        |s| &mut s.oversized,
                        (ended - whole) as u64,
                        "longer than 4 MiB",
                    );
                }
            }
            lines.finish(&mut take);
            hub.closed(ch);
        }))
    }

    /// One line from channel `ch` (worker `id`).
    fn relay(&self, ch: Channel, id: WorkerId, line: &[u8]) {
        let mut s = lock(&self.shared);
        match s.router.route(ch, line) {
            Verdict::Deliver(to) => {
                let full = deliver(&s, &to, line);
                drop(s);
                if full > 0 {
                    self.count(id, |s| &mut s.overflowed, full, "a worker's queue was full");
                }
            }
            Verdict::Ignore => {}
            Verdict::Garbage(why) => {
                drop(s);
                self.count(id, |s| &mut s.garbage, 1, why);
            }
        }
    }

    /// Channel `ch` closed: the others learn its workers exited.
    fn closed(&self, ch: Channel) {
        let mut s = lock(&self.shared);
        s.queues.remove(&ch);
        for (to, line) in s.router.closed(ch) {
            deliver(&s, &to, &line);
        }
    }

    /// Adds `n` to a counter; warns at 1, 2, 4, 8... in total.
    fn count(&self, id: WorkerId, which: fn(&mut State) -> &mut u64, n: u64, why: &str) {
        let total = {
            let mut s = lock(&self.shared);
            let c = which(&mut s);
            let before = *c;
            *c += n;
            (before.checked_ilog2() != c.checked_ilog2()).then_some(*c)
        };
        if let Some(total) = total {
            self.logger.warn(&format!(
                "socket.io relay: dropped a line from worker {id} ({why}); {total} such so far"
            ));
        }
    }

    /// Lines dropped so far: (garbage, oversized, overflowed).
    pub fn dropped(&self) -> (u64, u64, u64) {
        let s = lock(&self.shared);
        (s.garbage, s.oversized, s.overflowed)
    }
}

/// Queues `line` and its newline to each of `to`; the count of full
/// queues ([`QUEUE`] lines or [`QUEUE_BYTES`]).
fn deliver(s: &State, to: &[Channel], line: &[u8]) -> u64 {
    if to.is_empty() {
        return 0;
    }
    let mut framed = Vec::with_capacity(line.len() + 1);
    framed.extend_from_slice(line);
    framed.push(b'\n');
    let framed = Bytes::from(framed);
    let mut full = 0;
    for ch in to {
        let Some(q) = s.queues.get(ch) else {
            continue;
        };
        let len = framed.len();
        if q.bytes.load(Ordering::Acquire) + len > QUEUE_BYTES {
            full += 1;
            continue;
        }
        q.bytes.fetch_add(len, Ordering::AcqRel);
        match q.tx.try_send(framed.clone()) {
            Ok(()) => {}
            Err(e) => {
                q.bytes.fetch_sub(len, Ordering::AcqRel);
                if matches!(e, mpsc::error::TrySendError::Full(_)) {
                    full += 1;
                }
            }
        }
    }
    full
}

fn write_preload() -> io::Result<(PathBuf, Arc<tempfile::TempDir>)> {
    let dir = tempfile::Builder::new().prefix("corefit-node-").tempdir()?;
    let path = dir.path().join(PRELOAD_FILE);
    std::fs::write(&path, PRELOAD_JS)?;
    Ok((path, Arc::new(dir)))
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // Poisoned only if a holder panicked; the state is still usable.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::time::Duration;

    fn logger() -> Logger {
        Logger {
            format: crate::supervise::LogFormat::Text,
        }
    }

    /// Three channels through the real tasks: a broadcast from one
    /// reaches the other two, garbage and a 5 MiB line are dropped and
    /// counted, `'ready'` is reported, and closing one tells the others.
    #[tokio::test]
    async fn relays_between_real_channels_and_survives_garbage() {
        let hub = Hub::new(logger());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut workers = Vec::new();
        for id in 0..3 {
            let (parent, child) = std::os::unix::net::UnixStream::pair().unwrap();
            hub.attach(parent, id, 100 + id as i32, id == 0, tx.clone())
                .unwrap();
            child
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            workers.push(child);
        }
        let init = |id: u32| {
            format!("{{\"source\":\"_sio_adapter\",\"type\":1,\"data\":{id},\"nsp\":\"/\"}}\n")
        };
        // Written from a thread: a 4 MiB line fills the socket while the
        // relay (on this runtime's thread) drains it.
        let writers: Vec<_> = workers.iter().map(|w| w.try_clone().unwrap()).collect();
        let writing = std::thread::spawn(move || {
            for (id, mut w) in writers.into_iter().enumerate() {
                // Not a message, too long, not the adapter's: then one INIT.
                w.write_all(b"\xff garbage\n").unwrap();
                if id == 1 {
                    w.write_all(&vec![b'{'; MAX_LINE + 1]).unwrap();
                    w.write_all(b"\n").unwrap();
                }
                w.write_all(b"\"ready\"\n").unwrap();
                w.write_all(init(id as u32 + 1).as_bytes()).unwrap();
            }
        });
        let ev = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(ev, Event::Ready { id: 0, pid: 100 }), "{ev:?}");
        let mut readers: Vec<BufReader<std::os::unix::net::UnixStream>> = workers
            .iter()
            .map(|w| BufReader::new(w.try_clone().unwrap()))
            .collect();
        let got = tokio::task::spawn_blocking(move || {
            let mut seen = Vec::new();
            for r in readers.iter_mut().take(2) {
                let mut lines = Vec::new();
                for _ in 0..2 {
                    let mut l = String::new();
                    r.read_line(&mut l).unwrap();
                    lines.push(l);
                }
                lines.sort();
                seen.push(lines);
            }
            (seen, readers)
        })
        .await
        .unwrap();
        let (seen, mut readers) = got;
        writing.join().unwrap();
        assert_eq!(seen[0], vec![init(2), init(3)]);
        assert_eq!(seen[1], vec![init(1), init(3)]);
        assert_eq!(hub.dropped(), (3, 1, 0));
        // Worker 2 (id 3) goes away: the others are told.
        drop(workers.remove(2));
        drop(readers.remove(2));
        let exit = serde_json::json!({"source": "_sio_adapter", "type": 3, "data": 3});
        let lines = tokio::task::spawn_blocking(move || {
            readers
                .iter_mut()
                .map(|r| {
                    let mut l = String::new();
                    r.read_line(&mut l).unwrap();
                    serde_json::from_str::<serde_json::Value>(&l).unwrap()
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        assert_eq!(lines, vec![exit.clone(), exit]);
    }

    /// A worker that does not read: its queue stops at [`QUEUE_BYTES`]
    /// (or [`QUEUE`] lines); the rest is dropped and counted.
    #[test]
    fn a_queue_is_bounded_in_bytes_and_lines() {
        let (tx, _rx) = mpsc::channel::<Bytes>(QUEUE);
        let bytes = Arc::new(AtomicUsize::new(0));
        let mut s = State::default();
        s.queues.insert(
            7,
            Queue {
                tx,
                bytes: bytes.clone(),
            },
        );
        let big = vec![b'x'; 1 << 20];
        let full: u64 = (0..40).map(|_| deliver(&s, &[7], &big)).sum();
        assert_eq!(full, 40 - 15);
        assert!(bytes.load(Ordering::Acquire) <= QUEUE_BYTES);
        let (tx, _rx) = mpsc::channel::<Bytes>(QUEUE);
        s.queues.insert(
            8,
            Queue {
                tx,
                bytes: Arc::default(),
            },
        );
        let full: u64 = (0..QUEUE + 10).map(|_| deliver(&s, &[8], b"{}")).sum();
        assert_eq!(full, 10);
        // A channel that is gone is no error.
        assert_eq!(deliver(&s, &[99], b"{}"), 0);
    }

    #[test]
    fn the_preload_goes_into_node_options() {
        let hub = Hub::new(logger());
        let mut env = BTreeMap::from([(
            "NODE_OPTIONS".to_owned(),
            "--max-old-space-size=256".to_owned(),
        )]);
        hub.prepare(&mut env);
        let value = &env["NODE_OPTIONS"];
        let (path, _) = hub.preload.as_ref().unwrap();
        assert_eq!(
            value,
            &format!("--max-old-space-size=256 --require {}", path.display())
        );
        assert_eq!(std::fs::read_to_string(path).unwrap(), PRELOAD_JS);
    }
}
