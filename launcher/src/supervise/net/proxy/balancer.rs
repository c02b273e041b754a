//! Which worker gets the next proxied connection: the routed worker with
//! the fewest open connections, ties broken round-robin; with affinity,
//! the client's slot ([`Want`]: its hashed address, placed and remembered
//! by [`Sticky`], or the slot its cookie names).

use std::net::SocketAddr;

use super::affinity::Want;
use super::hashing::Sticky;

/// A worker the proxy may connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub addr: SocketAddr,
    /// Connections open to it now.
    pub active: usize,
}

/// The routing table, indexed by worker id.
#[derive(Debug, Default)]
pub struct Balancer {
    slots: Vec<Option<Backend>>,
    cursor: usize,
    /// `client-ip`: where recent clients went.
    sticky: Sticky,
}

impl Balancer {
    pub fn new(workers: usize) -> Balancer {
        Balancer {
            slots: vec![None; workers],
            cursor: 0,
            sticky: Sticky::default(),
        }
    }

    /// Starts routing to worker `id` at `addr`.
    pub fn route(&mut self, id: usize, addr: SocketAddr) {
        if id >= self.slots.len() {
            self.slots.resize(id + 1, None);
        }
        self.slots[id] = Some(Backend { addr, active: 0 });
    }

    /// Stops routing to worker `id` (its open connections keep going).
    pub fn unroute(&mut self, id: usize) {
        if let Some(slot) = self.slots.get_mut(id) {
            *slot = None;
        }
    }

    /// Worker slots (routed or not).
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Picks a worker for a connection that wants `want` and counts the
    /// connection against it. `exclude` is an address that just refused a
    /// connection (a worker restarted under the same id listens on a new
    /// one).
    pub fn pick(&mut self, exclude: Option<SocketAddr>, want: Want) -> Option<(usize, SocketAddr)> {
        let usable = |b: &Option<Backend>| b.as_ref().filter(|b| Some(b.addr) != exclude).is_some();
        let id = match want {
            Want::Slot(id) if self.slots.get(id).is_some_and(usable) => Some(id),
            Want::Client(key) => {
                let loads: Vec<Option<usize>> = self
                    .slots
                    .iter()
                    .map(|b| {
                        b.as_ref()
                            .filter(|b| Some(b.addr) != exclude)
                            .map(|b| b.active)
                    })
                    .collect();
                self.sticky.pick(key, &loads)
            }
            _ => self.fewest(exclude),
        }?;
        let backend = self.slots[id].as_mut()?;
        backend.active += 1;
        Some((id, backend.addr))
    }

    /// The routed worker with the fewest connections, ties round-robin.
    fn fewest(&mut self, exclude: Option<SocketAddr>) -> Option<usize> {
        let n = self.slots.len();
        let mut best: Option<(usize, usize)> = None;
        for step in 0..n {
            let id = (self.cursor + step) % n;
            if let Some(b) = self.slots[id].as_ref().filter(|b| Some(b.addr) != exclude) {
                if best.is_none_or(|(_, active)| b.active < active) {
                    best = Some((id, b.active));
                }
            }
        }
        let (id, _) = best?;
        self.cursor = (id + 1) % n.max(1);
        Some(id)
    }

    /// True while worker `id` is routed at `addr` (false once it was
    /// replaced, scaled away or stopped).
    pub fn is_routed(&self, id: usize, addr: SocketAddr) -> bool {
        matches!(self.slots.get(id), Some(Some(b)) if b.addr == addr)
    }

    /// A connection to worker `id` at `addr` ended.
    pub fn release(&mut self, id: usize, addr: SocketAddr) {
        if let Some(Some(b)) = self.slots.get_mut(id) {
            if b.addr == addr {
                b.active = b.active.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn round_robin_when_loads_are_equal() {
        let mut b = Balancer::new(3);
        for id in 0..3 {
            b.route(id, addr(9000 + id as u16));
        }
        let picks: Vec<usize> = (0..6)
            .map(|_| {
                let (id, a) = b.pick(None, Want::Any).unwrap();
                b.release(id, a);
                id
            })
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn least_connections_wins() {
        let mut b = Balancer::new(2);
        b.route(0, addr(1));
        b.route(1, addr(2));
        assert_eq!(b.pick(None, Want::Any).unwrap().0, 0);
        assert_eq!(b.pick(None, Want::Any).unwrap().0, 1);
        assert_eq!(b.pick(None, Want::Any).unwrap().0, 0);
        // 0 has 2 open, 1 has 1: 1 gets the next.
        assert_eq!(b.pick(None, Want::Any).unwrap().0, 1);
        b.release(1, addr(2));
        b.release(1, addr(2));
        assert_eq!(b.pick(None, Want::Any).unwrap().0, 1);
    }

    #[test]
    fn only_routed_workers_and_stale_releases_ignored() {
        let mut b = Balancer::new(2);
        assert_eq!(b.pick(None, Want::Any), None);
        b.route(1, addr(2));
        assert_eq!(b.pick(None, Want::Any), Some((1, addr(2))));
        assert_eq!(b.pick(Some(addr(2)), Want::Any), None);
        assert_eq!(b.pick(Some(addr(9)), Want::Any), Some((1, addr(2))));
        b.release(1, addr(2));
        // A replacement on a new port starts at 0; the old connection's
        // release does not touch it.
        b.unroute(1);
        b.route(1, addr(3));
        b.release(1, addr(2));
        assert_eq!(b.pick(None, Want::Any), Some((1, addr(3))));
        assert!(b.is_routed(1, addr(3)) && !b.is_routed(1, addr(2)) && !b.is_routed(0, addr(3)));
        b.release(7, addr(3));
    }

    #[test]
    fn a_cookie_slot_is_kept_while_routed() {
        let mut b = Balancer::new(3);
        for id in 0..3 {
            b.route(id, addr(9000 + id as u16));
        }
        for _ in 0..3 {
            assert_eq!(b.pick(None, Want::Slot(2)).unwrap().0, 2);
        }
        // Away, refused or out of range: the fewest connections.
        b.unroute(2);
        assert_eq!(b.pick(None, Want::Slot(2)).unwrap().0, 0);
        assert_eq!(b.pick(Some(addr(9001)), Want::Slot(1)).unwrap().0, 0);
        assert_eq!(b.pick(None, Want::Slot(7)).unwrap().0, 1);
    }

    #[test]
    fn a_client_keeps_its_slot_across_a_restart() {
        let mut b = Balancer::new(4);
        for id in 0..4 {
            b.route(id, addr(9000 + id as u16));
        }
        let key = crate::supervise::net::proxy::hashing::client_key([10, 0, 0, 9].into());
        let (home, a) = b.pick(None, Want::Client(key)).unwrap();
        b.release(home, a);
        // Its worker restarts: another one meanwhile, the same one (on a
        // new port) after.
        b.unroute(home);
        let (other, _) = b.pick(None, Want::Client(key)).unwrap();
        assert_ne!(other, home);
        b.route(home, addr(9100));
        assert_eq!(b.pick(None, Want::Client(key)), Some((home, addr(9100))));
        // Refused at its address: another for this connection only.
        assert_ne!(b.pick(Some(addr(9100)), Want::Client(key)).unwrap().0, home);
        assert_eq!(b.pick(None, Want::Client(key)).unwrap().0, home);
    }
}
