//! Adj-RIB-In, Loc-RIB and the decision process (RFC 4271 §9.1) with multipath.
//!
//! Routes are stored after import policy. For each prefix the candidates from all
//! neighbors go through the decision process; the survivors of the steps up to
//! "eBGP over iBGP" form the multipath (ECMP) set, the tie-breakers (BGP identifier,
//! neighbor address) pick the single best route used for re-advertisement.
//!
//! Storage is built for full tables (a million prefixes and more): ONE ordered map per
//! address family holds, per prefix, the Adj-RIB-In paths of all neighbors together with
//! the Loc-RIB selection, so there is no second per-prefix map for the Loc-RIB or the FIB.
//! Keys are compact (IPv4: one `u64`), path attributes are shared (`Arc<Route>`, interned
//! by the [`crate::Speaker`], so all prefixes with equal attributes and next hop point at
//! one allocation), and the common case of a prefix learned from one neighbor is a 16-byte
//! entry with the selection implicit (a single candidate always wins). Only prefixes with
//! several candidates keep an explicit selection (best path and ECMP set) on the heap.
//!
//! Every change of a prefix's selection is recorded as a [`LocChange`]; the speaker takes
//! them with [`Rib::take_changes`] to emit FIB events and re-advertise.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::prefix::{Afi, Prefix};
use crate::wire::{Origin, PathAttributes};

/// Identifies a neighbor within a [`crate::speaker::Speaker`] (chosen by the caller).
pub type NeighborId = u32;

/// One path: the attributes as received (after import policy) and the resolved next hop.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    /// Path attributes; `local_pref` is the effective value (policy for eBGP).
    pub attrs: PathAttributes,
    /// Next hop (NEXT_HOP for IPv4, the MP_REACH global address for IPv6).
    pub next_hop: IpAddr,
}

impl Route {
    fn local_pref(&self) -> u32 {
        self.attrs.local_pref.unwrap_or(100)
    }
    fn path_len(&self) -> usize {
        self.attrs.as_path.as_ref().map_or(0, |p| p.path_len())
    }
    fn origin(&self) -> Origin {
        self.attrs.origin.unwrap_or(Origin::Incomplete)
    }
    fn neighbor_as(&self) -> Option<u32> {
        self.attrs.as_path.as_ref().and_then(|p| p.first_as())
    }
}

/// What the decision process needs to know about the neighbor a route came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The neighbor's address (last tie-breaker).
    pub address: IpAddr,
    /// The neighbor's BGP identifier.
    pub router_id: Ipv4Addr,
    /// True for an eBGP neighbor.
    pub ebgp: bool,
}

/// The selected routes for one prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selected {
    /// The best route and its neighbor.
    pub best: (NeighborId, Arc<Route>),
    /// The ECMP set: (next hop, neighbor), sorted; includes the best route's.
    pub multipath: Vec<(IpAddr, NeighborId)>,
}

/// A change of the Loc-RIB entry of one prefix (best route and/or ECMP set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocChange {
    /// The prefix.
    pub prefix: Prefix,
    /// The prefix had a selected route before this change.
    pub was_selected: bool,
    /// The ECMP next-hop set changed (including appearing or disappearing), i.e. the
    /// kernel route must change; false when only the best path's attributes changed.
    pub next_hops_changed: bool,
}

/// One neighbor's path for a prefix (Adj-RIB-In entry).
#[derive(Clone, Debug)]
struct Path {
    route: Arc<Route>,
    nb: NeighborId,
    stale: bool,
}

/// Several candidates for one prefix, with the explicit selection.
#[derive(Clone, Debug)]
struct Many {
    paths: Vec<Path>,
    /// Index of the best path in `paths`.
    best: usize,
    /// The ECMP set, sorted.
    multipath: Vec<(IpAddr, NeighborId)>,
}

/// Everything known about one prefix. 16 bytes for the usual single-path case.
#[derive(Clone, Debug)]
enum Entry {
    /// One candidate, which is the selection.
    One(Path),
    /// Two or more candidates.
    Many(Box<Many>),
}

/// The next-hop set of a selection, inline for the single-next-hop case.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Hops {
    One(IpAddr, NeighborId),
    Many(Vec<(IpAddr, NeighborId)>),
}

impl Hops {
    fn from_slice(v: &[(IpAddr, NeighborId)]) -> Hops {
        match v {
            [(a, n)] => Hops::One(*a, *n),
            _ => Hops::Many(v.to_vec()),
        }
    }
}

/// A selection as compared before/after a change.
type Sig = (NeighborId, Arc<Route>, Hops);

impl Entry {
    fn paths(&self) -> &[Path] {
        match self {
            Entry::One(p) => std::slice::from_ref(p),
            Entry::Many(m) => &m.paths,
        }
    }

    fn best(&self) -> &Path {
        match self {
            Entry::One(p) => p,
            // `best` is always a valid index (kept so by `reselect`); fall back to the first.
            Entry::Many(m) => m.paths.get(m.best).unwrap_or(&m.paths[0]),
        }
    }

    fn sig(&self) -> Sig {
        match self {
            Entry::One(p) => (p.nb, p.route.clone(), Hops::One(p.route.next_hop, p.nb)),
            Entry::Many(m) => {
                let b = self.best();
                (b.nb, b.route.clone(), Hops::from_slice(&m.multipath))
            }
        }
    }

    fn multipath(&self) -> Vec<(IpAddr, NeighborId)> {
        match self {
            Entry::One(p) => vec![(p.route.next_hop, p.nb)],
            Entry::Many(m) => m.multipath.clone(),
        }
    }

    fn selected(&self) -> Selected {
        let b = self.best();
        Selected {
            best: (b.nb, b.route.clone()),
            multipath: self.multipath(),
        }
    }

    /// Re-runs the decision process of a `Many` entry.
    fn reselect(&mut self, peers: &HashMap<NeighborId, PeerInfo>) {
        let Entry::Many(m) = self else { return };
        let cands: Vec<(NeighborId, Arc<Route>)> =
            m.paths.iter().map(|p| (p.nb, p.route.clone())).collect();
        if let Some(s) = select(&cands, peers) {
            m.best = m.paths.iter().position(|p| p.nb == s.best.0).unwrap_or(0);
            m.multipath = s.multipath;
        }
    }
}

fn same_sig(a: &Option<Sig>, b: &Option<Sig>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => x.0 == y.0 && (Arc::ptr_eq(&x.1, &y.1) || x.1 == y.1) && x.2 == y.2,
        _ => false,
    }
}

fn key4(a: Ipv4Addr, len: u8) -> u64 {
    (u64::from(u32::from(a)) << 8) | u64::from(len)
}

fn key6(a: Ipv6Addr, len: u8) -> (u128, u8) {
    (u128::from(a), len)
}

fn prefix4(k: u64) -> Prefix {
    Prefix::from_key(
        IpAddr::V4(Ipv4Addr::from((k >> 8) as u32)),
        (k & 0xff) as u8,
    )
}

fn prefix6(k: &(u128, u8)) -> Prefix {
    Prefix::from_key(IpAddr::V6(Ipv6Addr::from(k.0)), k.1)
}

/// A Loc-RIB entry as iterated: the best route and the ECMP next hops, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct LocEntry<'a> {
    entry: &'a Entry,
}

impl<'a> LocEntry<'a> {
    /// The best route and the neighbor it came from.
    pub fn best(&self) -> (NeighborId, &'a Arc<Route>) {
        let b = self.entry.best();
        (b.nb, &b.route)
    }

    /// The ECMP set: (next hop, neighbor), sorted; includes the best route's.
    pub fn next_hops(&self) -> impl Iterator<Item = (IpAddr, NeighborId)> + 'a {
        let (one, many) = match self.entry {
            Entry::One(p) => (Some((p.route.next_hop, p.nb)), &[][..]),
            Entry::Many(m) => (None, &m.multipath[..]),
        };
        one.into_iter().chain(many.iter().copied())
    }

    /// The ECMP set as a vector (see [`LocEntry::next_hops`]).
    pub fn next_hops_vec(&self) -> Vec<(IpAddr, NeighborId)> {
        self.entry.multipath()
    }
}

/// Adj-RIBs-In of all neighbors plus the Loc-RIB, in one map per address family.
#[derive(Debug, Default)]
pub struct Rib {
    v4: BTreeMap<u64, Entry>,
    v6: BTreeMap<(u128, u8), Entry>,
    peers: HashMap<NeighborId, PeerInfo>,
    /// Paths per neighbor (its Adj-RIB-In size).
    counts: HashMap<NeighborId, usize>,
    changes: Vec<LocChange>,
}

/// The two maps and the context, borrowed apart.
type Split<'a> = (
    &'a mut BTreeMap<u64, Entry>,
    &'a mut BTreeMap<(u128, u8), Entry>,
    Ctx<'a>,
);

/// Counters and change log a map operation updates.
struct Ctx<'a> {
    peers: &'a HashMap<NeighborId, PeerInfo>,
    counts: &'a mut HashMap<NeighborId, usize>,
    changes: &'a mut Vec<LocChange>,
}

impl Ctx<'_> {
    fn add(&mut self, id: NeighborId) {
        *self.counts.entry(id).or_default() += 1;
    }
    fn sub(&mut self, id: NeighborId) {
        if let Some(c) = self.counts.get_mut(&id) {
            *c = c.saturating_sub(1);
        }
    }
    fn record(&mut self, prefix: Prefix, before: &Option<Sig>, after: &Option<Sig>) {
        if same_sig(before, after) {
            return;
        }
        self.changes.push(LocChange {
            prefix,
            was_selected: before.is_some(),
            next_hops_changed: before.as_ref().map(|s| &s.2) != after.as_ref().map(|s| &s.2),
        });
    }
}

/// Sets (`Some`) or removes (`None`) neighbor `id`'s path in one map. True when the
/// Adj-RIB-In changed.
fn set_in<K: Ord>(
    map: &mut BTreeMap<K, Entry>,
    key: K,
    prefix: Prefix,
    id: NeighborId,
    route: Option<Arc<Route>>,
    cx: &mut Ctx<'_>,
) -> bool {
    use std::collections::btree_map::Entry as E;
    match (map.entry(key), route) {
        (E::Vacant(_), None) => false,
        (E::Vacant(v), Some(route)) => {
            let after = Entry::One(Path {
                route,
                nb: id,
                stale: false,
            });
            cx.record(prefix, &None, &Some(after.sig()));
            v.insert(after);
            cx.add(id);
            true
        }
        (E::Occupied(mut o), Some(route)) => {
            let e = o.get_mut();
            let before = Some(e.sig());
            match e {
                Entry::One(p) if p.nb == id => {
                    if !p.stale && (Arc::ptr_eq(&p.route, &route) || p.route == route) {
                        return false;
                    }
                    p.route = route;
                    p.stale = false;
                }
                Entry::Many(m) if m.paths.iter().any(|p| p.nb == id) => {
                    let Some(p) = m.paths.iter_mut().find(|p| p.nb == id) else {
                        return false;
                    };
                    if !p.stale && (Arc::ptr_eq(&p.route, &route) || p.route == route) {
                        return false;
                    }
                    p.route = route;
                    p.stale = false;
                }
                Entry::One(_) => {
                    let new = Path {
                        route: route.clone(),
                        nb: id,
                        stale: false,
                    };
                    // Placeholder while the single path moves into the list.
                    let old = std::mem::replace(e, Entry::One(new.clone()));
                    if let Entry::One(first) = old {
                        *e = Entry::Many(Box::new(Many {
                            paths: vec![first, new],
                            best: 0,
                            multipath: Vec::new(),
                        }));
                    }
                    cx.add(id);
                }
                Entry::Many(m) => {
                    m.paths.push(Path {
                        route,
                        nb: id,
                        stale: false,
                    });
                    cx.add(id);
                }
            }
            e.reselect(cx.peers);
            cx.record(prefix, &before, &Some(e.sig()));
            true
        }
        (E::Occupied(mut o), None) => {
            let e = o.get_mut();
            if !e.paths().iter().any(|p| p.nb == id) {
                return false;
            }
            cx.sub(id);
            let before = Some(e.sig());
            if !remove_paths(e, |p| p.nb == id, cx.peers) {
                o.remove();
                cx.record(prefix, &before, &None);
            } else {
                cx.record(prefix, &before, &Some(e.sig()));
            }
            true
        }
    }
}

/// Removes the paths matching `drop` from an entry (in place) and re-runs the decision;
/// false when no path is left (the caller removes the entry).
fn remove_paths(
    e: &mut Entry,
    drop: impl Fn(&Path) -> bool,
    peers: &HashMap<NeighborId, PeerInfo>,
) -> bool {
    match e {
        Entry::One(p) => !drop(p),
        Entry::Many(m) => {
            m.paths.retain(|p| !drop(p));
            match m.paths.len() {
                0 => false,
                1 => {
                    if let Some(p) = m.paths.pop() {
                        *e = Entry::One(p);
                    }
                    true
                }
                _ => {
                    e.reselect(peers);
                    true
                }
            }
        }
    }
}

/// Drops every path matching `drop` from a map, recording the Loc-RIB changes. Returns
/// how many paths went.
fn drop_in<K: Ord>(
    map: &mut BTreeMap<K, Entry>,
    to_prefix: impl Fn(&K) -> Prefix,
    drop: impl Fn(&Path) -> bool + Copy,
    cx: &mut Ctx<'_>,
) -> usize {
    let mut n = 0;
    map.retain(|k, e| {
        let hit = e.paths().iter().filter(|p| drop(p)).count();
        if hit == 0 {
            return true;
        }
        n += hit;
        for p in e.paths().iter().filter(|p| drop(p)) {
            if let Some(c) = cx.counts.get_mut(&p.nb) {
                *c = c.saturating_sub(1);
            }
        }
        let before = Some(e.sig());
        let keep = remove_paths(e, drop, cx.peers);
        let after = keep.then(|| e.sig());
        cx.record(to_prefix(k), &before, &after);
        keep
    });
    n
}

impl Rib {
    /// An empty RIB.
    pub fn new() -> Rib {
        Rib::default()
    }

    fn split(&mut self) -> Split<'_> {
        (
            &mut self.v4,
            &mut self.v6,
            Ctx {
                peers: &self.peers,
                counts: &mut self.counts,
                changes: &mut self.changes,
            },
        )
    }

    fn get(&self, p: &Prefix) -> Option<&Entry> {
        match p.addr() {
            IpAddr::V4(a) => self.v4.get(&key4(a, p.len())),
            IpAddr::V6(a) => self.v6.get(&key6(a, p.len())),
        }
    }

    /// Records (or updates) what the decision process needs about a neighbor.
    pub fn set_peer(&mut self, id: NeighborId, info: PeerInfo) {
        self.peers.insert(id, info);
    }

    /// Installs (`Some`) or removes (`None`) the neighbor's route for `prefix` in its
    /// Adj-RIB-In and re-runs the decision process for the prefix. Returns true when the
    /// Adj-RIB-In changed; a change of the selection is recorded for
    /// [`Rib::take_changes`].
    pub fn set(&mut self, id: NeighborId, prefix: Prefix, route: Option<Arc<Route>>) -> bool {
        let (v4, v6, mut cx) = self.split();
        match prefix.addr() {
            IpAddr::V4(a) => set_in(v4, key4(a, prefix.len()), prefix, id, route, &mut cx),
            IpAddr::V6(a) => set_in(v6, key6(a, prefix.len()), prefix, id, route, &mut cx),
        }
    }

    /// The Loc-RIB changes since the last call, in the order they happened (a prefix may
    /// appear more than once).
    pub fn take_changes(&mut self) -> Vec<LocChange> {
        std::mem::take(&mut self.changes)
    }

    /// Number of prefixes in the neighbor's Adj-RIB-In.
    pub fn count(&self, id: NeighborId) -> usize {
        self.counts.get(&id).copied().unwrap_or(0)
    }

    /// Prefixes the neighbor has in its Adj-RIB-In.
    pub fn prefixes_of(&self, id: NeighborId) -> Vec<Prefix> {
        self.iter_entries()
            .filter(|(_, e)| e.paths().iter().any(|p| p.nb == id))
            .map(|(p, _)| p)
            .collect()
    }

    fn drop_where(&mut self, afi: Option<Afi>, drop: impl Fn(&Path) -> bool + Copy) -> usize {
        let (v4, v6, mut cx) = self.split();
        let mut n = 0;
        if afi != Some(Afi::Ipv6) {
            n += drop_in(v4, |k| prefix4(*k), drop, &mut cx);
        }
        if afi != Some(Afi::Ipv4) {
            n += drop_in(v6, prefix6, drop, &mut cx);
        }
        n
    }

    /// Removes everything learned from the neighbor; returns how many prefixes it had.
    pub fn remove_neighbor(&mut self, id: NeighborId) -> usize {
        let n = self.drop_where(None, |p| p.nb == id);
        self.counts.remove(&id);
        n
    }

    /// Marks the neighbor's routes stale (graceful restart); routes of families not in
    /// `keep` are removed. Returns how many were removed.
    pub fn mark_stale(&mut self, id: NeighborId, keep: &[Afi]) -> usize {
        let mut n = 0;
        for afi in [Afi::Ipv4, Afi::Ipv6] {
            if keep.contains(&afi) {
                self.mark_stale_afi(id, afi);
            } else {
                n += self.drop_where(Some(afi), |p| p.nb == id);
            }
        }
        n
    }

    /// Marks the neighbor's routes of one family stale (RFC 7313 BoRR) without removing any.
    pub fn mark_stale_afi(&mut self, id: NeighborId, afi: Afi) {
        let mark = |e: &mut Entry| match e {
            Entry::One(p) if p.nb == id => p.stale = true,
            Entry::One(_) => {}
            Entry::Many(m) => m
                .paths
                .iter_mut()
                .filter(|p| p.nb == id)
                .for_each(|p| p.stale = true),
        };
        match afi {
            Afi::Ipv4 => self.v4.values_mut().for_each(mark),
            Afi::Ipv6 => self.v6.values_mut().for_each(mark),
        }
    }

    /// Removes the neighbor's routes that are still stale (for `afi`, or all when `None`);
    /// returns how many went.
    pub fn sweep_stale(&mut self, id: NeighborId, afi: Option<Afi>) -> usize {
        self.drop_where(afi, |p| p.nb == id && p.stale)
    }

    /// True when the neighbor has stale routes.
    pub fn has_stale(&self, id: NeighborId) -> bool {
        self.iter_entries()
            .any(|(_, e)| e.paths().iter().any(|p| p.nb == id && p.stale))
    }

    fn iter_entries(&self) -> impl Iterator<Item = (Prefix, &Entry)> + '_ {
        self.v4
            .iter()
            .map(|(k, e)| (prefix4(*k), e))
            .chain(self.v6.iter().map(|(k, e)| (prefix6(k), e)))
    }

    /// The Loc-RIB entry for a prefix.
    pub fn selected(&self, prefix: &Prefix) -> Option<Selected> {
        self.get(prefix).map(Entry::selected)
    }

    /// The ECMP next hops of a prefix's selection (sorted), if it has one.
    pub fn next_hops(&self, prefix: &Prefix) -> Option<Vec<(IpAddr, NeighborId)>> {
        self.get(prefix).map(Entry::multipath)
    }

    /// The Loc-RIB entry for a prefix, borrowed.
    pub fn loc(&self, prefix: &Prefix) -> Option<LocEntry<'_>> {
        self.get(prefix).map(|entry| LocEntry { entry })
    }

    /// The whole Loc-RIB in prefix order (IPv4 first).
    pub fn loc_iter(&self) -> impl Iterator<Item = (Prefix, LocEntry<'_>)> + '_ {
        self.iter_entries()
            .map(|(p, entry)| (p, LocEntry { entry }))
    }

    /// Number of prefixes with a selected route.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// True when no prefix has a selected route.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// All candidate routes for a prefix: (neighbor, route, stale).
    pub fn candidates(&self, prefix: &Prefix) -> Vec<(NeighborId, Arc<Route>, bool)> {
        self.get(prefix)
            .map(|e| {
                let mut v: Vec<_> = e
                    .paths()
                    .iter()
                    .map(|p| (p.nb, p.route.clone(), p.stale))
                    .collect();
                v.sort_by_key(|c| c.0);
                v
            })
            .unwrap_or_default()
    }
}

/// RFC 4271 §9.1.2.2 steps a–e (+ f skipped: no IGP cost): returns the routes that survive,
/// which are the multipath set.
fn multipath_survivors<'a>(
    cands: &'a [(NeighborId, Arc<Route>)],
    peers: &HashMap<NeighborId, PeerInfo>,
) -> Vec<&'a (NeighborId, Arc<Route>)> {
    let mut v: Vec<&(NeighborId, Arc<Route>)> = cands.iter().collect();
    // a. highest LOCAL_PREF
    if let Some(m) = v.iter().map(|c| c.1.local_pref()).max() {
        v.retain(|c| c.1.local_pref() == m);
    }
    // b. shortest AS_PATH
    if let Some(m) = v.iter().map(|c| c.1.path_len()).min() {
        v.retain(|c| c.1.path_len() == m);
    }
    // c. lowest ORIGIN
    if let Some(m) = v.iter().map(|c| c.1.origin()).min() {
        v.retain(|c| c.1.origin() == m);
    }
    // d. lowest MED among routes from the same neighboring AS (missing MED = 0)
    let snapshot = v.clone();
    v.retain(|c| {
        let med = c.1.attrs.med.unwrap_or(0);
        !snapshot
            .iter()
            .any(|o| o.1.neighbor_as() == c.1.neighbor_as() && o.1.attrs.med.unwrap_or(0) < med)
    });
    // e. eBGP over iBGP
    let ebgp = |c: &&(NeighborId, Arc<Route>)| peers.get(&c.0).is_some_and(|p| p.ebgp);
    if v.iter().any(ebgp) {
        v.retain(ebgp);
    }
    // ECMP only across routes from the same neighboring AS (as BIRD/FRR by default).
    if let Some(first) = v
        .iter()
        .min_by(|a, b| tie_break(a, b, peers))
        .map(|c| c.1.neighbor_as())
    {
        v.retain(|c| c.1.neighbor_as() == first);
    }
    v
}

/// Steps f (BGP identifier) and g (neighbor address): lower wins.
fn tie_break(
    a: &(NeighborId, Arc<Route>),
    b: &(NeighborId, Arc<Route>),
    peers: &HashMap<NeighborId, PeerInfo>,
) -> Ordering {
    let key = |c: &(NeighborId, Arc<Route>)| {
        peers
            .get(&c.0)
            .map(|p| (u32::from(p.router_id), p.address, c.0))
            .unwrap_or((u32::MAX, IpAddr::V4(Ipv4Addr::BROADCAST), c.0))
    };
    key(a).cmp(&key(b))
}

fn select(
    cands: &[(NeighborId, Arc<Route>)],
    peers: &HashMap<NeighborId, PeerInfo>,
) -> Option<Selected> {
    let surv = multipath_survivors(cands, peers);
    let best = surv.iter().min_by(|a, b| tie_break(a, b, peers))?;
    let mut multipath: Vec<(IpAddr, NeighborId)> =
        surv.iter().map(|c| (c.1.next_hop, c.0)).collect();
    multipath.sort();
    multipath.dedup();
    Some(Selected {
        best: (best.0, best.1.clone()),
        multipath,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::AsPath;

    fn route(path: Vec<u32>, nh: &str, f: impl FnOnce(&mut PathAttributes)) -> Arc<Route> {
        let mut attrs = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(path)),
            ..Default::default()
        };
        f(&mut attrs);
        Arc::new(Route {
            attrs,
            next_hop: nh.parse().unwrap(),
        })
    }

    fn rib() -> Rib {
        let mut r = Rib::new();
        for (id, a, rid, ebgp) in [
            (1, "10.2.255.4", 4, true),
            (2, "10.2.255.5", 5, true),
            (3, "10.1.0.9", 9, false),
        ] {
            r.set_peer(
                id,
                PeerInfo {
                    address: a.parse().unwrap(),
                    router_id: Ipv4Addr::from(rid),
                    ebgp,
                },
            );
        }
        r
    }

    /// Takes the recorded changes: (prefix, next hops changed) in order.
    fn changes(r: &mut Rib) -> Vec<(Prefix, bool)> {
        r.take_changes()
            .into_iter()
            .map(|c| (c.prefix, c.next_hops_changed))
            .collect()
    }

    #[test]
    fn ecmp_across_equal_neighbors() {
        let mut r = rib();
        let p: Prefix = "10.2.0.0/16".parse().unwrap();
        assert!(r.set(1, p, Some(route(vec![65515], "10.2.255.4", |_| {}))));
        assert!(r.set(2, p, Some(route(vec![65515], "10.2.255.5", |_| {}))));
        assert_eq!(changes(&mut r), vec![(p, true), (p, true)]);
        let s = r.selected(&p).unwrap();
        assert_eq!(s.best.0, 1);
        assert_eq!(s.multipath.len(), 2);
        // The same route again: no change at all.
        assert!(!r.set(2, p, Some(route(vec![65515], "10.2.255.5", |_| {}))));
        assert!(changes(&mut r).is_empty());
        // longer path on neighbor 2 drops it from the set
        r.set(2, p, Some(route(vec![65515, 65515], "10.2.255.5", |_| {})));
        assert_eq!(changes(&mut r), vec![(p, true)]);
        assert_eq!(r.selected(&p).unwrap().multipath.len(), 1);
        assert_eq!(r.remove_neighbor(1), 1);
        assert_eq!(changes(&mut r), vec![(p, true)]);
        assert_eq!(r.selected(&p).unwrap().best.0, 2);
        assert_eq!(r.count(1), 0);
        assert_eq!(r.count(2), 1);
        r.remove_neighbor(2);
        assert_eq!(changes(&mut r), vec![(p, true)]);
        assert!(r.selected(&p).is_none());
        assert!(r.is_empty());
    }

    #[test]
    fn attribute_change_keeps_next_hops() {
        let mut r = rib();
        let p: Prefix = "10.2.0.0/16".parse().unwrap();
        r.set(1, p, Some(route(vec![65515], "10.2.255.4", |_| {})));
        r.take_changes();
        r.set(
            1,
            p,
            Some(route(vec![65515], "10.2.255.4", |a| a.med = Some(7))),
        );
        let c = r.take_changes();
        assert_eq!(c.len(), 1);
        assert!(c[0].was_selected && !c[0].next_hops_changed);
        assert_eq!(r.selected(&p).unwrap().best.1.attrs.med, Some(7));
    }

    #[test]
    fn single_path_entry_is_small() {
        assert!(
            std::mem::size_of::<Entry>() <= 16,
            "{}",
            std::mem::size_of::<Entry>()
        );
    }

    #[test]
    fn decision_steps() {
        let mut r = rib();
        let p: Prefix = "10.3.0.0/16".parse().unwrap();
        // local pref beats path length
        r.set(
            1,
            p,
            Some(route(vec![1, 2, 3], "10.2.255.4", |a| {
                a.local_pref = Some(200)
            })),
        );
        r.set(2, p, Some(route(vec![1], "10.2.255.5", |_| {})));
        assert_eq!(r.selected(&p).unwrap().best.0, 1);
        // origin
        r.set(
            1,
            p,
            Some(route(vec![1], "10.2.255.4", |a| {
                a.origin = Some(Origin::Incomplete)
            })),
        );
        assert_eq!(r.selected(&p).unwrap().best.0, 2);
        // MED, same neighbor AS: lower wins
        r.set(
            1,
            p,
            Some(route(vec![1], "10.2.255.4", |a| a.med = Some(5))),
        );
        r.set(
            2,
            p,
            Some(route(vec![1], "10.2.255.5", |a| a.med = Some(10))),
        );
        assert_eq!(r.selected(&p).unwrap().best.0, 1);
        assert_eq!(r.selected(&p).unwrap().multipath.len(), 1);
        // eBGP over iBGP
        r.set(1, p, None);
        r.set(2, p, None);
        r.set(3, p, Some(route(vec![1], "10.1.0.9", |_| {})));
        r.set(2, p, Some(route(vec![1], "10.2.255.5", |_| {})));
        assert_eq!(r.selected(&p).unwrap().best.0, 2);
    }

    #[test]
    fn graceful_restart_stale() {
        let mut r = rib();
        let p4: Prefix = "10.2.0.0/16".parse().unwrap();
        let p6: Prefix = "2001:db8::/32".parse().unwrap();
        r.set(1, p4, Some(route(vec![65515], "10.2.255.4", |_| {})));
        r.set(1, p6, Some(route(vec![65515], "2001:db8::1", |_| {})));
        assert_eq!(r.mark_stale(1, &[Afi::Ipv4]), 1);
        assert!(r.selected(&p6).is_none());
        assert!(r.has_stale(1));
        r.set(1, p4, Some(route(vec![65515], "10.2.255.4", |_| {})));
        assert!(!r.has_stale(1));
        r.mark_stale(1, &[Afi::Ipv4]);
        assert_eq!(r.sweep_stale(1, Some(Afi::Ipv4)), 1);
        assert!(r.selected(&p4).is_none());
        assert_eq!(r.count(1), 0);
    }
}
