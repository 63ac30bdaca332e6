//! Per-neighbor routing policy: announcements, import/export prefix lists, AS-path
//! prepending, maximum-prefix limits.

use std::time::Duration;

use crate::prefix::{Prefix, PrefixList};

/// What to do when a neighbor sends more prefixes than allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxPrefixAction {
    /// Emit a warning event, keep the session and the routes.
    Warn,
    /// Send Cease/1 and stay down until restarted by the caller.
    Teardown,
    /// Send Cease/1 and restart the session after this delay.
    RestartAfter(Duration),
}

/// A maximum-prefix limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPrefix {
    /// Largest number of accepted prefixes (all families).
    pub limit: usize,
    /// Action when exceeded.
    pub action: MaxPrefixAction,
}

/// Policy for one neighbor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Prefixes we originate to this neighbor (e.g. the site's networks, or 0.0.0.0/0 for
    /// forced tunneling).
    pub announce: Vec<Prefix>,
    /// Accepted prefixes (empty = accept all).
    pub import: PrefixList,
    /// Prefixes we may send (empty = no restriction); applies to announcements and
    /// re-advertised routes.
    pub export: PrefixList,
    /// Re-advertise routes learned from other neighbors (off by default: a site is not transit).
    pub export_learned: bool,
    /// Extra copies of our AS prepended on export (eBGP).
    pub prepend: u8,
    /// LOCAL_PREF given to routes from this (eBGP) neighbor.
    pub local_pref: u32,
    /// Maximum-prefix limit.
    pub max_prefixes: Option<MaxPrefix>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            announce: vec![],
            import: PrefixList::default(),
            export: PrefixList::default(),
            export_learned: false,
            prepend: 0,
            local_pref: 100,
            max_prefixes: None,
        }
    }
}

impl Policy {
    /// Import decision for a prefix: the import list permits it and it is not one of the
    /// prefixes we announce ourselves (never route our own networks into the tunnel).
    pub fn accepts(&self, p: &Prefix) -> bool {
        self.import.permits(p) && !self.announce.contains(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts() {
        let p = Policy {
            announce: vec!["10.1.0.0/16".parse().unwrap()],
            import: PrefixList::parse(&["10.0.0.0/8 le 24"]).unwrap(),
            ..Policy::default()
        };
        assert!(p.accepts(&"10.2.0.0/16".parse().unwrap()));
        assert!(!p.accepts(&"10.1.0.0/16".parse().unwrap()));
        assert!(!p.accepts(&"10.2.0.0/25".parse().unwrap()));
        assert!(!p.accepts(&"192.168.0.0/16".parse().unwrap()));
    }
}
