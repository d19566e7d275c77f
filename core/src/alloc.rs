//! Picking a free multicast group and port for `makeroom <name>`.
//!
//! # The rules
//!
//! - A room on group `g` and port `p` occupies two endpoints: `g:p`, where
//!   its chat goes, and `g:p+1`, reserved for roomcast's own traffic (the
//!   reliable-chat protocol). A new room's endpoints must not touch an
//!   existing room's: on the same group its port must differ by at least 2
//!   ([`Directory::check_new`](crate::Directory::check_new)). A room on
//!   port 65535 reserves nothing more.
//! - The server allocates from its [`AddressPool`]: one or more group
//!   prefixes ([`GroupPrefix`], at most [`MAX_GROUP_POOLS`], never
//!   overlapping) and a [`PortRange`]; an allocated room's port `p` and
//!   `p + 1` both lie in the range.
//! - Among the free slots it picks at random: the randomness comes from the
//!   host as a seed ([`Allocator::new`]); the core never reads any.
//!
//! # Bounded work, and why it finds a free slot when there is one
//!
//! [`Allocator::allocate`] sorts the rooms by (group, port) (at most
//! 2 × [`MAX_ROOMS`] entries: the directory and the changes waiting to be
//! stored), then
//! 1. tries [`ALLOC_PROBES`] slots drawn at random, each checked by a
//!    binary search; then
//! 2. walks the groups of the pool in order from a random one, at most
//!    `min(G, E + 1)` of them, where `G` is the number of groups in the pool
//!    and `E` the number of room entries. In each it takes the lowest free
//!    port, found by one pass over that group's rooms.
//!
//! If `G <= E + 1` the walk visits every group and every port: it finds a
//! free slot if any exists. Otherwise it visits `E + 1` distinct groups
//! (pools never overlap), and `E` entries hold rooms in at most `E` groups,
//! so one visited group holds no room, and every port of the range is free
//! there (a range holds at least one slot). Either way the work is
//! `O(E log E)`, whatever the size of the pool.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::limits::{
    ALLOC_PROBES, DEFAULT_GROUP_POOL, DEFAULT_PORT_RANGE, MAX_GROUP_POOLS, MAX_ROOMS, MIN_ROOM_PORT,
};
use crate::wire::Room;

/// The IPv6 multicast prefixes (16 bits: `ff` and flags and scope) a room
/// may use: transient (flags `1`) groups of admin-local (`4`), site-local
/// (`5`) and organisation-local (`8`) scope.
pub const IPV6_ROOM_SCOPES: [u16; 3] = [0xff14, 0xff15, 0xff18];

/// Whether `group` may be a room's group: IPv4 in 239.0.0.0/8 (RFC 2365,
/// administratively scoped), or IPv6 in ff14::/16, ff15::/16 or ff18::/16
/// ([`IPV6_ROOM_SCOPES`]).
pub fn is_room_group(group: IpAddr) -> bool {
    match group {
        IpAddr::V4(v4) => v4.octets()[0] == 239,
        IpAddr::V6(v6) => IPV6_ROOM_SCOPES.contains(&v6.segments()[0]),
    }
}

/// A group as a number, for sorting and walking: an IPv4 group is its 32
/// bits, an IPv6 one its 128 (room groups never mix: IPv6 room groups start
/// with `ff`).
fn group_key(group: IpAddr) -> u128 {
    match group {
        IpAddr::V4(v4) => u32::from(v4).into(),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// A block of multicast groups: an address and a prefix length, like
/// `239.255.0.0/16` or `ff15::/16`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupPrefix {
    base: IpAddr,
    len: u8,
}

/// Why a group pool or port range was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoolError {
    /// Not `ADDRESS/LENGTH`.
    Syntax,
    /// The prefix length is too short (IPv4: under 8; IPv6: under 16) or
    /// too long (over 32 or 128).
    Length,
    /// Bits are set after the prefix (`239.255.1.0/16`).
    HostBits,
    /// The block is not inside 239.0.0.0/8, ff14::/16, ff15::/16 or
    /// ff18::/16.
    Scope,
    /// Two pools overlap.
    Overlap,
    /// More than [`MAX_GROUP_POOLS`] pools.
    TooMany,
    /// A port range that is not `FIRST-LAST` with
    /// `1024 <= FIRST < LAST <= 65535`.
    Ports,
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PoolError::Syntax => "write a group pool as ADDRESS/LENGTH, like 239.255.0.0/16",
            PoolError::Length => {
                "the prefix length must be 8-32 for IPv4 (in 239.0.0.0/8), 16-128 for IPv6"
            }
            PoolError::HostBits => "the address has bits set after the prefix length",
            PoolError::Scope => {
                "a group pool must lie inside 239.0.0.0/8, ff14::/16, ff15::/16 or ff18::/16"
            }
            PoolError::Overlap => "two group pools overlap",
            PoolError::TooMany => "too many group pools (at most 8)",
            PoolError::Ports => {
                "write a port range as FIRST-LAST with 1024 <= FIRST < LAST <= 65535 \
                 (a room uses its port and the next)"
            }
        })
    }
}

impl GroupPrefix {
    /// Reads `ADDRESS/LENGTH` and checks it is a block of room groups (see
    /// [`is_room_group`]).
    pub fn parse(text: &str) -> Result<GroupPrefix, PoolError> {
        let (addr, len) = text.split_once('/').ok_or(PoolError::Syntax)?;
        let base: IpAddr = addr.parse().map_err(|_| PoolError::Syntax)?;
        if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PoolError::Syntax);
        }
        let len: u8 = len.parse().map_err(|_| PoolError::Syntax)?;
        GroupPrefix::new(base, len)
    }

    /// The block of `len` leading bits of `base`; see [`parse`](Self::parse).
    pub fn new(base: IpAddr, len: u8) -> Result<GroupPrefix, PoolError> {
        let (min, max) = match base {
            IpAddr::V4(_) => (8, 32),
            IpAddr::V6(_) => (16, 128),
        };
        if len < min || len > max {
            return Err(PoolError::Length);
        }
        let prefix = GroupPrefix { base, len };
        if group_key(base) & (prefix.size() - 1) != 0 {
            return Err(PoolError::HostBits);
        }
        if !is_room_group(base) {
            return Err(PoolError::Scope);
        }
        Ok(prefix)
    }

    fn bits(&self) -> u32 {
        match self.base {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        }
    }

    /// How many groups the block holds (at most 2^112).
    pub fn size(&self) -> u128 {
        1u128 << (self.bits() - u32::from(self.len))
    }

    /// The `i`-th group of the block (`i < size()`).
    fn group(&self, i: u128) -> IpAddr {
        let key = group_key(self.base) + i;
        match self.base {
            // `key` stays below 2^32 for an IPv4 block.
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(key as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(key)),
        }
    }

    fn overlaps(&self, other: &GroupPrefix) -> bool {
        if self.bits() != other.bits() {
            return false;
        }
        let (a, b) = (group_key(self.base), group_key(other.base));
        a < b + other.size() && b < a + self.size()
    }
}

impl fmt::Display for GroupPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.len)
    }
}

/// The ports rooms are given, both ends included: a room gets a port `p`
/// with `first <= p` and `p + 1 <= last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    first: u16,
    last: u16,
}

impl PortRange {
    /// `first..=last`; needs `MIN_ROOM_PORT <= first < last`.
    pub fn new(first: u16, last: u16) -> Result<PortRange, PoolError> {
        if first < MIN_ROOM_PORT || first >= last {
            return Err(PoolError::Ports);
        }
        Ok(PortRange { first, last })
    }

    /// Reads `FIRST-LAST`, like `40000-49999`.
    pub fn parse(text: &str) -> Result<PortRange, PoolError> {
        let (a, b) = text.split_once('-').ok_or(PoolError::Ports)?;
        let number = |s: &str| {
            (!s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u16>().ok())
                .flatten()
                .ok_or(PoolError::Ports)
        };
        PortRange::new(number(a)?, number(b)?)
    }

    /// How many ports a room may be given: `last - first`.
    fn slots(&self) -> u16 {
        self.last - self.first
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// Where `makeroom <name>` takes a room's group and port from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressPool {
    groups: heapless::Vec<GroupPrefix, MAX_GROUP_POOLS>,
    ports: PortRange,
}

impl Default for AddressPool {
    /// [`DEFAULT_GROUP_POOL`] and [`DEFAULT_PORT_RANGE`].
    fn default() -> Self {
        let mut groups = heapless::Vec::new();
        if let Ok(prefix) = GroupPrefix::parse(DEFAULT_GROUP_POOL) {
            let _ = groups.push(prefix);
        }
        let (first, last) = DEFAULT_PORT_RANGE;
        AddressPool {
            groups,
            ports: PortRange { first, last },
        }
    }
}

impl AddressPool {
    /// A pool of these group blocks (1 to [`MAX_GROUP_POOLS`], not
    /// overlapping) and ports.
    pub fn new(groups: &[GroupPrefix], ports: PortRange) -> Result<AddressPool, PoolError> {
        if groups.is_empty() {
            return Err(PoolError::Syntax);
        }
        let mut pool = heapless::Vec::new();
        for (i, prefix) in groups.iter().enumerate() {
            if groups[..i].iter().any(|p| p.overlaps(prefix)) {
                return Err(PoolError::Overlap);
            }
            pool.push(*prefix).map_err(|_| PoolError::TooMany)?;
        }
        Ok(AddressPool {
            groups: pool,
            ports,
        })
    }

    /// The group blocks.
    pub fn groups(&self) -> &[GroupPrefix] {
        &self.groups
    }

    /// The port range.
    pub fn ports(&self) -> PortRange {
        self.ports
    }

    fn total_groups(&self) -> u128 {
        // At most 8 blocks of at most 2^112 groups: no overflow.
        self.groups.iter().map(GroupPrefix::size).sum()
    }

    /// The `i`-th group of the pool, counting block after block.
    fn group(&self, mut i: u128) -> IpAddr {
        for prefix in &self.groups {
            if i < prefix.size() {
                return prefix.group(i);
            }
            i -= prefix.size();
        }
        // `i < total_groups()`: not reached; a valid answer all the same.
        self.groups[0].group(0)
    }
}

impl fmt::Display for AddressPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, prefix) in self.groups.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{prefix}")?;
        }
        write!(f, " ports {}", self.ports)
    }
}

/// Picks free endpoints from an [`AddressPool`] (see the module docs).
#[derive(Clone, Debug)]
pub struct Allocator {
    pool: AddressPool,
    rng: SplitMix64,
    /// Rooms as (directory, index), sorted by (group, port).
    scratch: heapless::Vec<(u8, u16), { 2 * MAX_ROOMS }>,
}

impl Default for Allocator {
    fn default() -> Self {
        Allocator::new(AddressPool::default(), 0)
    }
}

impl Allocator {
    /// An allocator over `pool`, its random choices drawn from `seed` (the
    /// host gives it from the system's randomness; tests fix it).
    pub fn new(pool: AddressPool, seed: u64) -> Allocator {
        Allocator {
            pool,
            rng: SplitMix64(seed),
            scratch: heapless::Vec::new(),
        }
    }

    /// The pool allocated from.
    pub fn pool(&self) -> &AddressPool {
        &self.pool
    }

    /// A free group and port from the pool: one whose port and port + 1
    /// touch no endpoint of any room in `rooms` (see the module docs), or
    /// `None` if the pool has none. Bounded work: `O(E log E)` for `E`
    /// rooms in all.
    pub fn allocate(&mut self, rooms: [&[Room]; 2]) -> Option<(IpAddr, u16)> {
        let total = self.pool.total_groups();
        if total == 0 {
            return None;
        }
        self.scratch.clear();
        for (d, list) in rooms.iter().enumerate() {
            for i in 0..list.len().min(MAX_ROOMS) {
                // Capacity is 2 × MAX_ROOMS: never full.
                let _ = self.scratch.push((d as u8, i as u16));
            }
        }
        let key = |&(d, i): &(u8, u16)| {
            let room = &rooms[usize::from(d)][usize::from(i)];
            (group_key(room.group), room.port)
        };
        self.scratch.sort_unstable_by_key(key);
        let sorted = &self.scratch;
        let ports = self.pool.ports;
        // Whether a room of `group` uses a port in `p - 1 ..= p + 1`.
        let taken = |group: u128, p: u16| {
            let from = (group, p.saturating_sub(1));
            let at = sorted.partition_point(|e| key(e) < from);
            sorted
                .get(at)
                .map(key)
                .is_some_and(|(g, q)| g == group && q <= p.saturating_add(1))
        };

        let slots = u128::from(ports.slots());
        // Below `slots`, a u16: the cast keeps it.
        let port = |rng: &mut SplitMix64| ports.first + rng.below(slots) as u16;

        // 1. Random probes.
        for _ in 0..ALLOC_PROBES {
            let group = self.pool.group(self.rng.below(total));
            let p = port(&mut self.rng);
            if !taken(group_key(group), p) {
                return Some((group, p));
            }
        }

        // 2. The walk, from a random group.
        let start = self.rng.below(total);
        let spare_port = port(&mut self.rng);
        let steps = total.min(sorted.len() as u128 + 1);
        for step in 0..steps {
            let group = self.pool.group((start + step) % total);
            let g = group_key(group);
            let from = sorted.partition_point(|e| key(e).0 < g);
            let mut candidate = ports.first;
            let mut empty = true;
            for entry in &sorted[from..] {
                let (eg, q) = key(entry);
                if eg != g {
                    break;
                }
                empty = false;
                if u32::from(q) >= u32::from(candidate) + 2 {
                    break;
                }
                // Saturates at 65535, which is never below `ports.last`.
                candidate = candidate.max(q.saturating_add(2));
            }
            if empty {
                return Some((group, spare_port));
            }
            if candidate < ports.last && !taken(g, candidate) {
                return Some((group, candidate));
            }
        }
        None
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): enough to spread rooms over the
/// pool; nothing depends on it being unpredictable.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (`n > 0`), near enough uniform.
    fn below(&mut self, n: u128) -> u128 {
        let r = (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64());
        r % n.max(1)
    }
}

#[cfg(test)]
mod tests;
