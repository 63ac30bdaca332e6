//! In-memory network of Speakers joined by byte pipes, on a simulated clock.
#![allow(dead_code)]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use bgp::{Dir, NeighborId, Speaker, SpeakerEvent};

/// One end of a link: (speaker index, neighbor id on that speaker).
pub type End = (usize, NeighborId);

/// A TCP path between two speakers.
pub struct Link {
    pub a: End,
    pub b: End,
    /// When false, connects fail and bytes are dropped silently (a dead path).
    pub up: bool,
}

pub struct Net {
    pub speakers: Vec<Speaker>,
    pub links: Vec<Link>,
    pub now: Instant,
    /// Every event each speaker emitted, in order.
    pub events: Vec<Vec<SpeakerEvent>>,
    /// Raw bytes each speaker sent, per (speaker, neighbor).
    pub sent: Vec<(usize, NeighborId, Vec<u8>)>,
}

fn flip(d: Dir) -> Dir {
    match d {
        Dir::Outbound => Dir::Inbound,
        Dir::Inbound => Dir::Outbound,
    }
}

impl Net {
    pub fn new(speakers: Vec<Speaker>, links: Vec<Link>) -> Net {
        let n = speakers.len();
        Net {
            speakers,
            links,
            now: Instant::now(),
            events: vec![Vec::new(); n],
            sent: Vec::new(),
        }
    }

    fn peer(&self, e: End) -> Option<(usize, End)> {
        self.links.iter().enumerate().find_map(|(i, l)| {
            if l.a == e {
                Some((i, l.b))
            } else if l.b == e {
                Some((i, l.a))
            } else {
                None
            }
        })
    }

    pub fn start(&mut self) {
        let now = self.now;
        for s in &mut self.speakers {
            s.start(now);
        }
        self.drive();
    }

    /// Moves connects, bytes and closes until nothing happens.
    pub fn drive(&mut self) {
        let now = self.now;
        for _ in 0..10_000 {
            let mut progress = false;
            for i in 0..self.speakers.len() {
                while let Some(id) = self.speakers[i].poll_connect() {
                    progress = true;
                    match self.peer((i, id)) {
                        Some((li, (j, jid))) if self.links[li].up => {
                            self.speakers[i].tcp_connected(now, id, Dir::Outbound);
                            self.speakers[j].tcp_connected(now, jid, Dir::Inbound);
                        }
                        _ => self.speakers[i].tcp_failed(now, id),
                    }
                }
                while let Some((id, t)) = self.speakers[i].poll_transmit() {
                    progress = true;
                    self.sent.push((i, id, t.bytes.clone()));
                    if let Some((li, (j, jid))) = self.peer((i, id)) {
                        if self.links[li].up {
                            self.speakers[j].handle_bytes(now, jid, flip(t.dir), &t.bytes);
                        }
                    }
                }
                while let Some(ev) = self.speakers[i].poll_event() {
                    progress = true;
                    if let SpeakerEvent::Close { neighbor, dir } = &ev {
                        if let Some((li, (j, jid))) = self.peer((i, *neighbor)) {
                            if self.links[li].up {
                                self.speakers[j].tcp_closed(now, jid, flip(*dir));
                            }
                        }
                    }
                    self.events[i].push(ev);
                }
            }
            if !progress {
                return;
            }
        }
        panic!("network did not settle");
    }

    /// Advances the simulated clock by `d`, firing timers on the way.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = self
                .speakers
                .iter()
                .filter_map(|s| s.poll_timeout())
                .min()
                .filter(|t| *t <= end);
            let Some(t) = next else { break };
            self.now = t.max(self.now);
            let now = self.now;
            for s in &mut self.speakers {
                s.handle_timeout(now);
            }
            self.drive();
        }
        self.now = end;
        self.drive();
    }

    /// Cuts the TCP connections of a link as a reset would (both sides see a close).
    pub fn reset_link(&mut self, li: usize) {
        let now = self.now;
        let (a, b) = (self.links[li].a, self.links[li].b);
        for (s, id) in [a, b] {
            self.speakers[s].tcp_closed(now, id, Dir::Outbound);
            self.speakers[s].tcp_closed(now, id, Dir::Inbound);
        }
        self.drive();
    }

    pub fn take_events(&mut self, i: usize) -> Vec<SpeakerEvent> {
        std::mem::take(&mut self.events[i])
    }

    pub fn fib_next_hops(&self, i: usize, prefix: &str) -> Option<Vec<(IpAddr, NeighborId)>> {
        self.speakers[i].fib().get(&prefix.parse().unwrap())
    }
}
