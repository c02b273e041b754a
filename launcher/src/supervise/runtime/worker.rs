//! Performing `Spawn`: the runtime executes the pure [`launch_plan`]:
//! finds a private port (proxy), binds the descriptors the plan asks for,
//! spawns, sets the OOM score, pumps the output and starts the readiness
//! check.

use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use super::{Run, WorkerIo};
use crate::exit;
use crate::supervise::config::{Handover as HandoverSetting, ReadyCheck, SocketStrategy};
use crate::supervise::ipc::Hub;
use crate::supervise::launch::{argv, launch_plan, LaunchInput, ReadyWatch, Shim};
use crate::supervise::machine::{Event, WorkerId};
use crate::supervise::net::handover::Handover;
use crate::supervise::net::readiness::{probe_listening, probe_port, IpcChannel, NotifySocket};
use crate::supervise::net::sockets::{free_loopback_port, with_inheritable, WorkerSocket};
use crate::supervise::process::oom;
use crate::supervise::process::spawn::{spawn, SpawnSpec};
use crate::supervise::report::logs::{prefix, pump_lines, Stream};

impl Run<'_> {
    /// Performs `Spawn`: returns `Spawned` or `SpawnFailed`.
    pub(super) fn start_worker(&mut self, id: WorkerId) -> Event {
        let failed = |message: String, code: u8| Event::SpawnFailed { id, message, code };
        if id as usize >= self.io.len() {
            self.io.resize_with(id as usize + 1, WorkerIo::default);
        }
        let private_port = if self.settings.strategy == SocketStrategy::Proxy {
            match free_loopback_port() {
                Ok(p) => Some(p),
                Err(e) => return failed(e.to_string(), exit::FAILURE),
            }
        } else {
            None
        };
        let input = LaunchInput {
            id,
            desired: self.supervisor.desired(),
            slots: self.io.len(),
            settings: &self.settings,
            cfg: self.cfg,
            worker_env: &self.plan().worker_env,
            private_port,
        };
        let mut launch = match launch_plan(&input) {
            Ok(l) => l,
            Err(e) => return failed(e.to_string(), exit::FAILURE),
        };
        self.io[id as usize].port = Some(launch.port);

        let notify = match (&self.notify_dir, launch.notify) {
            (Some(dir), true) => {
                self.notify_seq += 1;
                match NotifySocket::bind(dir.path(), id, self.notify_seq) {
                    Ok(n) => {
                        launch.notify_socket(n.path());
                        Some(n)
                    }
                    Err(e) => {
                        return failed(format!("cannot bind NOTIFY_SOCKET: {e}"), exit::FAILURE)
                    }
                }
            }
            _ => None,
        };
        // `--affinity`: socket.io's cluster adapter relayed (supervise/ipc).
        let relay = self.settings.relay.then(|| {
            let hub = self.relay.get_or_insert_with(|| Hub::new(self.logger));
            hub.prepare(&mut launch.env);
            hub.clone()
        });
        let ipc = if launch.ipc || relay.is_some() {
            match IpcChannel::new() {
                Ok(c) => {
                    launch.ipc_channel(c.child.as_raw_fd());
                    Some(c)
                }
                Err(e) => return failed(format!("cannot open an IPC channel: {e}"), exit::FAILURE),
            }
        } else {
            None
        };
        // With the shim (`inject`, and `shared` for a dynamically linked
        // app): connections the worker closes while stopping come back.
        let handover = if self.preload.is_some() && self.cfg.handover == HandoverSetting::Auto {
            match Handover::new() {
                Ok(h) => {
                    launch.env.extend(h.env(launch.port));
                    Some(h)
                }
                Err(e) => {
                    return failed(
                        format!("cannot open a handover channel: {e}"),
                        exit::FAILURE,
                    )
                }
            }
        } else {
            None
        };
        let worker_socket = match (&mut self.public.shared, launch.shared_socket) {
            (Some(shared), true) => match shared.socket_for() {
                Ok(socket) => Some(socket),
                Err(e) => return failed(e.to_string(), exit::FAILURE),
            },
            _ => None,
        };
        let shared_fd = worker_socket.as_ref().map(WorkerSocket::raw_fd);
        // Through `corefit __exec-worker` when a socket goes on fd 3. By
        // /proc/self/exe, which is corefit's own image even after its file
        // was replaced (an upgrade in place, a rebuild): its path would
        // then name the new file, or nothing.
        let me = std::path::PathBuf::from("/proc/self/exe");
        let shim_path = self.preload.as_ref().map(crate::inject::preload_path);
        let shim = shim_path
            .as_deref()
            .map(|path| match self.settings.strategy {
                SocketStrategy::Inject => Shim::Inject(path),
                _ => Shim::Handover(path),
            });
        let (command, args) = argv(
            &self.program,
            self.cfg.command.get(1..).unwrap_or(&[]),
            shared_fd,
            shim,
            &me,
        );
        let spec = SpawnSpec {
            program: &self.program,
            command,
            args,
            env: launch.env,
            pipe_output: launch.pipe_output,
            inherit_stdin: launch.inherit_stdin,
        };
        // The child inherits the shared socket, its IPC end and its
        // handover channel (each made inheritable only for this spawn).
        let inherited: Vec<RawFd> = shared_fd
            .into_iter()
            .chain(ipc.as_ref().map(|c| c.child.as_raw_fd()))
            .chain(handover.iter().flat_map(Handover::inherited))
            .collect();
        let spawned = with_inheritable(&inherited, || spawn(&spec));
        let spawned = match spawned {
            Ok(r) => r,
            Err(e) => return failed(e.to_string(), exit::FAILURE),
        };
        let started = match spawned {
            Ok(s) => s,
            Err(e) => return failed(e.to_string(), e.exit_code()),
        };
        let pid = started.pid;
        if let Some(adj) = self.worker_oom_adj {
            // Raising a child's value needs no privilege. A worker already
            // gone (ESRCH, ENOENT) is reported by its exit.
            let gone = |e: &std::io::Error| {
                e.kind() == std::io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(nix::libc::ESRCH)
            };
            match oom::set_worker(Path::new("/proc"), pid, adj) {
                Ok(()) => {}
                Err(e) if gone(&e) => {}
                Err(e) => self.logger.warn(&format!(
                    "worker {id} (pid {pid}): cannot set its oom_score_adj to {adj}: {e}"
                )),
            }
        }
        let pfx = prefix(self.cfg.log_prefix, id);
        if let Some(out) = started.stdout {
            self.pump(out.into(), Stream::Stdout, pfx.clone());
        }
        if let Some(err) = started.stderr {
            self.pump(err.into(), Stream::Stderr, pfx);
        }
        if let Some(h) = handover {
            match h.serve(id, self.settings.public, self.logger) {
                Ok((flag, task)) => {
                    self.stop_flags.insert(pid, flag);
                    self.pumps.push(task);
                }
                Err(e) => self.logger.warn(&format!(
                    "worker {id}: cannot read its handover channel (connections it closes unread while stopping will be reset): {e}"
                )),
            }
        }
        if let Some(IpcChannel { parent, child }) = ipc {
            drop(child);
            let events = self.events_tx.clone();
            let by_ipc = self.settings.ready == ReadyCheck::Ipc;
            let watched = match &relay {
                Some(hub) => hub.attach(parent, id, pid, by_ipc, events),
                None => IpcChannel::watch(parent, id, pid, events),
            };
            match watched {
                // Not aborted with the worker's other checks: it ends when
                // the worker's end closes.
                Ok(task) => self.pumps.push(task),
                Err(e) => self
                    .logger
                    .warn(&format!("worker {id}: cannot read its IPC channel: {e}")),
            }
        }
        // corefit's copy of a worker's own socket: watched until the app
        // listens, or closed now.
        let own_socket = match worker_socket {
            Some(WorkerSocket::Own(fd)) => Some(fd),
            _ => None,
        };
        let task = match (launch.ready, notify, own_socket) {
            (ReadyWatch::Notify, Some(n), _) => Some(n.watch(id, pid, self.events_tx.clone())),
            (ReadyWatch::Port(addr), _, _) => {
                Some(probe_port(id, pid, addr, self.events_tx.clone()))
            }
            (ReadyWatch::Listening, _, Some(fd)) => {
                Some(probe_listening(id, pid, fd, self.events_tx.clone()))
            }
            _ => None,
        };
        if let Some(old) = std::mem::replace(&mut self.io[id as usize].readiness, task) {
            old.abort();
        }
        Event::Spawned { id, pid }
    }

    fn pump(&mut self, fd: std::os::fd::OwnedFd, stream: Stream, pfx: String) {
        match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
            Ok(rx) => {
                self.pumps.retain(|p| !p.is_finished());
                self.pumps.push(tokio::spawn(pump_lines(rx, stream, pfx)));
            }
            Err(e) => self
                .logger
                .warn(&format!("cannot read a worker's output: {e}")),
        }
    }
}
