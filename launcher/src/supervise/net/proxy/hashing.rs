//! Where `--affinity client-ip` puts a client, pure: rendezvous (highest
//! random weight) hashing of the client's address over worker SLOTS, with
//! a load bound, and a bounded memory of where recent clients went.
//!
//! - Each client ranks every slot by `score(client, slot)`; it goes to the
//!   first slot in its ranking that is routed and under the bound
//!   ([`place`]). The key is the slot id, never a process or a port: the
//!   replacement of a restarted worker takes the same place.
//! - Growing from N to N+1 slots moves only the clients whose top score is
//!   the new slot's (about 1/(N+1)); removing a slot moves only its own
//!   clients, spread over the others by their next choice.
//! - The bound (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with
//!   Bounded Loads", 2016): no slot takes a new client while it has
//!   `ceil(1.25 x (open + 1) / routed)` connections or more, so a crowd
//!   hashing to one worker spills over to its next choices.
//! - [`Sticky`] remembers each recent client's home slot, so a client the
//!   bound placed away from its first choice stays where it went (a
//!   socket.io session's requests must all reach one worker), and a pool
//!   that grows moves nobody who is still remembered. While the home slot
//!   is away (restarting, scaled away), the client takes a detour, also
//!   remembered, and goes home when the home slot is routed again.

use std::collections::HashMap;
use std::net::IpAddr;

/// The load bound's factor, as a fraction: 1.25 (the paper's c).
const BOUND: (usize, usize) = (5, 4);

/// Clients remembered, at most (two generations of half this each).
pub const STICKY_CLIENTS: usize = 65_536;

/// splitmix64's finalizer: a bijective 64-bit mix.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A client's key: its address (an IPv4-mapped IPv6 address is the IPv4
/// one), FNV-1a over its bytes, mixed.
pub fn client_key(ip: IpAddr) -> u64 {
    let bytes: Vec<u8> = match ip.to_canonical() {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    let fnv = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    mix(fnv)
}

/// How much `key` wants `slot` (higher first).
pub fn score(key: u64, slot: usize) -> u64 {
    mix(key ^ mix(slot as u64 ^ 0x5bd1_e995))
}

/// The slots in `key`'s order of preference.
pub fn ranking(key: u64, slots: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..slots).collect();
    order.sort_by_key(|&s| std::cmp::Reverse(score(key, s)));
    order
}

/// The most connections a slot may hold and still take a new client,
/// with `open` connections over `routed` slots.
pub fn bound(open: usize, routed: usize) -> usize {
    let (num, den) = BOUND;
    ((open + 1) * num).div_ceil(den * routed.max(1))
}

/// The slot a new connection of `key` goes to: `loads[slot]` is the
/// connections open to each routed slot, `None` for one not routed. The
/// first slot in the key's ranking under [`bound`]; `None` only when no
/// slot is routed.
pub fn place(key: u64, loads: &[Option<usize>]) -> Option<usize> {
    let routed = loads.iter().flatten().count();
    let open: usize = loads.iter().flatten().sum();
    let cap = bound(open, routed);
    let under = |s: &usize| loads[*s].is_some_and(|l| l < cap);
    // The sum of loads is under routed x cap, so some routed slot is under.
    ranking(key, loads.len()).into_iter().find(under)
}

/// Where a remembered client lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Home {
    slot: usize,
    /// Where it goes while `slot` is not routed.
    detour: Option<usize>,
}

/// Recent clients' slots, in two generations: a lookup finds either and
/// refreshes the client into the current one; when the current one holds
/// half of [`STICKY_CLIENTS`], it becomes the previous one (the oldest
/// are forgotten). Bounded memory, no clock.
#[derive(Debug, Default)]
pub struct Sticky {
    current: HashMap<u64, Home>,
    previous: HashMap<u64, Home>,
}

impl Sticky {
    /// The slot for a connection of `key`, remembering the choice.
    /// `loads` as for [`place`].
    pub fn pick(&mut self, key: u64, loads: &[Option<usize>]) -> Option<usize> {
        let known = self
            .current
            .remove(&key)
            .or_else(|| self.previous.remove(&key));
        let routed = |s: usize| loads.get(s).is_some_and(Option::is_some);
        let home = match known {
            Some(h) if routed(h.slot) => Home {
                slot: h.slot,
                detour: None,
            },
            Some(h) => {
                // Home is away: keep the detour while it is routed.
                let detour = match h.detour.filter(|&d| routed(d)) {
                    Some(d) => d,
                    None => place(key, loads)?,
                };
                Home {
                    slot: h.slot,
                    detour: Some(detour),
                }
            }
            None => Home {
                slot: place(key, loads)?,
                detour: None,
            },
        };
        self.remember(key, home);
        Some(home.detour.unwrap_or(home.slot))
    }

    fn remember(&mut self, key: u64, home: Home) {
        if self.current.len() >= STICKY_CLIENTS / 2 {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, home);
    }

    /// Clients remembered now.
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: u32) -> Vec<u64> {
        (0..n)
            .map(|i| client_key(IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8])))
            .collect()
    }

    fn idle(slots: usize) -> Vec<Option<usize>> {
        vec![Some(0); slots]
    }

    #[test]
    fn growing_3_to_4_moves_about_a_quarter_and_only_to_the_new_slot() {
        let clients = keys(1000);
        let before: Vec<usize> = clients
            .iter()
            .map(|&k| place(k, &idle(3)).unwrap())
            .collect();
        let after: Vec<usize> = clients
            .iter()
            .map(|&k| place(k, &idle(4)).unwrap())
            .collect();
        let moved: Vec<usize> = (0..clients.len())
            .filter(|&i| before[i] != after[i])
            .collect();
        println!("grow 3 -> 4 slots: {} of 1000 clients moved", moved.len());
        assert!((200..=300).contains(&moved.len()), "moved {}", moved.len());
        assert!(moved.iter().all(|&i| after[i] == 3));
        // Shrinking back moves exactly those, back where they were.
        let back: Vec<usize> = clients
            .iter()
            .map(|&k| place(k, &idle(3)).unwrap())
            .collect();
        assert_eq!(back, before);
        // Each slot gets its share (1000/4 = 250 give or take).
        for s in 0..4 {
            let n = after.iter().filter(|&&x| x == s).count();
            assert!((190..=310).contains(&n), "slot {s}: {n}");
        }
    }

    #[test]
    fn a_slot_not_routed_sends_only_its_own_clients_elsewhere() {
        let clients = keys(1000);
        let mut loads = idle(4);
        let all: Vec<usize> = clients.iter().map(|&k| place(k, &loads).unwrap()).collect();
        loads[2] = None;
        for (i, &k) in clients.iter().enumerate() {
            let now = place(k, &loads).unwrap();
            if all[i] == 2 {
                // Its next choice.
                assert_eq!(now, ranking(k, 4)[1]);
            } else {
                assert_eq!(now, all[i]);
            }
        }
        assert_eq!(place(1, &[None, None]), None);
        assert_eq!(place(1, &[]), None);
    }

    #[test]
    fn the_bound_spills_a_crowd_over() {
        // Every connection of one client, held open: its first choice
        // fills to the bound, then its next choices take the rest.
        let k = client_key("192.0.2.7".parse().unwrap());
        let mut loads = idle(4);
        for _ in 0..40 {
            let open: usize = loads.iter().flatten().sum();
            let s = place(k, &loads).unwrap();
            assert!(loads[s].unwrap() < bound(open, 4));
            loads[s] = loads[s].map(|l| l + 1);
        }
        let most = loads.iter().flatten().max().unwrap();
        assert!(*most <= bound(40, 4), "{loads:?}");
        assert_eq!(loads[ranking(k, 4)[0]], Some(*most));
        assert_eq!((bound(0, 4), bound(3, 4), bound(7, 4)), (1, 2, 3));
    }

    #[test]
    fn sticky_clients_stay_when_the_pool_grows_and_detour_while_home_is_away() {
        let clients = keys(200);
        let mut sticky = Sticky::default();
        let first: Vec<usize> = clients
            .iter()
            .map(|&k| sticky.pick(k, &idle(3)).unwrap())
            .collect();
        // A fourth slot: nobody remembered moves.
        let grown: Vec<usize> = clients
            .iter()
            .map(|&k| sticky.pick(k, &idle(4)).unwrap())
            .collect();
        assert_eq!(grown, first);
        // A new client may take the new slot.
        let newcomers = keys(1200)[1000..].to_vec();
        assert!(newcomers
            .iter()
            .any(|&k| sticky.pick(k, &idle(4)) == Some(3)));
        // Slot 1 restarting: its clients detour, and keep their detour
        // even as loads change; back home once it is routed again.
        let away = [Some(0), None, Some(0), Some(0)];
        let detours: Vec<usize> = clients
            .iter()
            .map(|&k| sticky.pick(k, &away).unwrap())
            .collect();
        let loaded = [Some(50), None, Some(0), Some(7)];
        for (i, &k) in clients.iter().enumerate() {
            assert_ne!(detours[i], 1);
            if first[i] != 1 {
                assert_eq!(detours[i], first[i]);
            }
            assert_eq!(sticky.pick(k, &loaded), Some(detours[i]));
            assert_eq!(sticky.pick(k, &idle(4)), Some(first[i]));
        }
    }

    #[test]
    fn sticky_memory_is_bounded() {
        let mut sticky = Sticky::default();
        for k in 0..(STICKY_CLIENTS as u64 * 3) {
            sticky.pick(mix(k), &idle(2));
        }
        assert!(sticky.len() <= STICKY_CLIENTS, "{}", sticky.len());
        assert!(!sticky.is_empty());
        // The most recent are remembered.
        let recent = mix(STICKY_CLIENTS as u64 * 3 - 1);
        assert!(sticky.current.contains_key(&recent));
    }

    #[test]
    fn keys_are_stable_and_mapped_addresses_are_ipv4() {
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(client_key(v4), client_key(mapped));
        assert_ne!(client_key(v4), client_key("10.1.2.4".parse().unwrap()));
        assert_eq!(mix(0), 0xe220_a839_7b1d_cdaf);
    }
}
