//! Adj-RIB-In, Loc-RIB and the decision process (RFC 4271 §9.1) with multipath.
//!
//! Routes are stored after import policy. For each prefix the candidates from all
//! neighbors go through the decision process; the survivors of the steps up to
//! "eBGP over iBGP" form the multipath (ECMP) set, the tie-breakers (BGP identifier,
//! neighbor address) pick the single best route used for re-advertisement.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
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

#[derive(Clone, Debug)]
struct InEntry {
    route: Arc<Route>,
    stale: bool,
}

/// The selected routes for one prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selected {
    /// The best route and its neighbor.
    pub best: (NeighborId, Arc<Route>),
    /// The ECMP set: (next hop, neighbor), sorted; includes the best route's.
    pub multipath: Vec<(IpAddr, NeighborId)>,
}

/// Adj-RIBs-In of all neighbors plus the Loc-RIB.
#[derive(Debug, Default)]
pub struct Rib {
    adj_in: BTreeMap<NeighborId, BTreeMap<Prefix, InEntry>>,
    peers: BTreeMap<NeighborId, PeerInfo>,
    loc: BTreeMap<Prefix, Selected>,
}

impl Rib {
    /// An empty RIB.
    pub fn new() -> Rib {
        Rib::default()
    }

    /// Records (or updates) what the decision process needs about a neighbor.
    pub fn set_peer(&mut self, id: NeighborId, info: PeerInfo) {
        self.peers.insert(id, info);
    }

    /// Installs (`Some`) or removes (`None`) the neighbor's route for `prefix` in its
    /// Adj-RIB-In. Returns true when the Adj-RIB-In changed. Call [`Rib::recompute`] after.
    pub fn set(&mut self, id: NeighborId, prefix: Prefix, route: Option<Arc<Route>>) -> bool {
        let t = self.adj_in.entry(id).or_default();
        match route {
            Some(r) => {
                let same = t.get(&prefix).is_some_and(|e| e.route == r && !e.stale);
                t.insert(
                    prefix,
                    InEntry {
                        route: r,
                        stale: false,
                    },
                );
                !same
            }
            None => t.remove(&prefix).is_some(),
        }
    }

    /// Number of prefixes in the neighbor's Adj-RIB-In.
    pub fn count(&self, id: NeighborId) -> usize {
        self.adj_in.get(&id).map_or(0, BTreeMap::len)
    }

    /// Prefixes the neighbor has in its Adj-RIB-In.
    pub fn prefixes_of(&self, id: NeighborId) -> Vec<Prefix> {
        self.adj_in
            .get(&id)
            .map(|t| t.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Removes everything learned from the neighbor; returns the affected prefixes.
    pub fn remove_neighbor(&mut self, id: NeighborId) -> Vec<Prefix> {
        self.adj_in
            .remove(&id)
            .map(|t| t.into_keys().collect())
            .unwrap_or_default()
    }

    /// Marks the neighbor's routes stale (graceful restart); routes of families not in
    /// `keep` are removed. Returns the removed prefixes.
    pub fn mark_stale(&mut self, id: NeighborId, keep: &[Afi]) -> Vec<Prefix> {
        let Some(t) = self.adj_in.get_mut(&id) else {
            return vec![];
        };
        let gone: Vec<Prefix> = t
            .keys()
            .filter(|p| !keep.contains(&p.afi()))
            .copied()
            .collect();
        for p in &gone {
            t.remove(p);
        }
        for e in t.values_mut() {
            e.stale = true;
        }
        gone
    }

    /// Marks the neighbor's routes of one family stale (RFC 7313 BoRR) without removing any.
    pub fn mark_stale_afi(&mut self, id: NeighborId, afi: Afi) {
        if let Some(t) = self.adj_in.get_mut(&id) {
            for (_, e) in t.iter_mut().filter(|(p, _)| p.afi() == afi) {
                e.stale = true;
            }
        }
    }

    /// Removes the neighbor's routes that are still stale (for `afi`, or all when `None`).
    pub fn sweep_stale(&mut self, id: NeighborId, afi: Option<Afi>) -> Vec<Prefix> {
        let Some(t) = self.adj_in.get_mut(&id) else {
            return vec![];
        };
        let gone: Vec<Prefix> = t
            .iter()
            .filter(|(p, e)| e.stale && afi.is_none_or(|a| p.afi() == a))
            .map(|(p, _)| *p)
            .collect();
        for p in &gone {
            t.remove(p);
        }
        gone
    }

    /// True when the neighbor has stale routes.
    pub fn has_stale(&self, id: NeighborId) -> bool {
        self.adj_in
            .get(&id)
            .is_some_and(|t| t.values().any(|e| e.stale))
    }

    /// The Loc-RIB entry for a prefix.
    pub fn selected(&self, prefix: &Prefix) -> Option<&Selected> {
        self.loc.get(prefix)
    }

    /// The whole Loc-RIB.
    pub fn loc_rib(&self) -> &BTreeMap<Prefix, Selected> {
        &self.loc
    }

    /// All candidate routes for a prefix: (neighbor, route, stale).
    pub fn candidates(&self, prefix: &Prefix) -> Vec<(NeighborId, Arc<Route>, bool)> {
        self.adj_in
            .iter()
            .filter_map(|(id, t)| t.get(prefix).map(|e| (*id, e.route.clone(), e.stale)))
            .collect()
    }

    /// Re-runs the decision process for `prefix`. Returns true when the Loc-RIB entry
    /// (best route or multipath set) changed.
    pub fn recompute(&mut self, prefix: Prefix) -> bool {
        let cands: Vec<(NeighborId, Arc<Route>)> = self
            .adj_in
            .iter()
            .filter_map(|(id, t)| t.get(&prefix).map(|e| (*id, e.route.clone())))
            .collect();
        let new = select(&cands, &self.peers);
        let old = self.loc.get(&prefix);
        if old == new.as_ref() {
            return false;
        }
        match new {
            Some(s) => self.loc.insert(prefix, s),
            None => self.loc.remove(&prefix),
        };
        true
    }
}

/// RFC 4271 §9.1.2.2 steps a–e (+ f skipped: no IGP cost): returns the routes that survive,
/// which are the multipath set.
fn multipath_survivors<'a>(
    cands: &'a [(NeighborId, Arc<Route>)],
    peers: &BTreeMap<NeighborId, PeerInfo>,
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
    peers: &BTreeMap<NeighborId, PeerInfo>,
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
    peers: &BTreeMap<NeighborId, PeerInfo>,
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

    #[test]
    fn ecmp_across_equal_neighbors() {
        let mut r = rib();
        let p: Prefix = "10.2.0.0/16".parse().unwrap();
        r.set(1, p, Some(route(vec![65515], "10.2.255.4", |_| {})));
        r.set(2, p, Some(route(vec![65515], "10.2.255.5", |_| {})));
        assert!(r.recompute(p));
        let s = r.selected(&p).unwrap();
        assert_eq!(s.best.0, 1);
        assert_eq!(s.multipath.len(), 2);
        assert!(!r.recompute(p));
        // longer path on neighbor 2 drops it from the set
        r.set(2, p, Some(route(vec![65515, 65515], "10.2.255.5", |_| {})));
        assert!(r.recompute(p));
        assert_eq!(r.selected(&p).unwrap().multipath.len(), 1);
        r.remove_neighbor(1);
        assert!(r.recompute(p));
        assert_eq!(r.selected(&p).unwrap().best.0, 2);
        r.remove_neighbor(2);
        assert!(r.recompute(p));
        assert!(r.selected(&p).is_none());
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
        r.recompute(p);
        assert_eq!(r.selected(&p).unwrap().best.0, 1);
        // origin
        r.set(
            1,
            p,
            Some(route(vec![1], "10.2.255.4", |a| {
                a.origin = Some(Origin::Incomplete)
            })),
        );
        r.recompute(p);
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
        r.recompute(p);
        assert_eq!(r.selected(&p).unwrap().best.0, 1);
        assert_eq!(r.selected(&p).unwrap().multipath.len(), 1);
        // eBGP over iBGP
        r.set(1, p, None);
        r.set(2, p, None);
        r.set(3, p, Some(route(vec![1], "10.1.0.9", |_| {})));
        r.set(2, p, Some(route(vec![1], "10.2.255.5", |_| {})));
        r.recompute(p);
        assert_eq!(r.selected(&p).unwrap().best.0, 2);
    }

    #[test]
    fn graceful_restart_stale() {
        let mut r = rib();
        let p4: Prefix = "10.2.0.0/16".parse().unwrap();
        let p6: Prefix = "2001:db8::/32".parse().unwrap();
        r.set(1, p4, Some(route(vec![65515], "10.2.255.4", |_| {})));
        r.set(1, p6, Some(route(vec![65515], "2001:db8::1", |_| {})));
        assert_eq!(r.mark_stale(1, &[Afi::Ipv4]), vec![p6]);
        assert!(r.has_stale(1));
        r.set(1, p4, Some(route(vec![65515], "10.2.255.4", |_| {})));
        assert!(!r.has_stale(1));
        r.mark_stale(1, &[Afi::Ipv4]);
        assert_eq!(r.sweep_stale(1, Some(Afi::Ipv4)), vec![p4]);
        assert_eq!(r.count(1), 0);
    }
}
