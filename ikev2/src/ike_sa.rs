//! One IKE SA: the IKE_SA_INIT / IKE_AUTH / INFORMATIONAL exchanges, both roles.
//!
//! Driven by [`crate::Endpoint`], which owns the configuration, the RNG and the output
//! queues and hands them in through [`Ctx`].

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use aws_lc_rs::digest;

use crate::config::{Config, Encap, Identity};
use crate::crypto::{
    psk_auth, signed_octets, verify_psk_auth, ChildKeys, DhPrivateKey, IkeKeys, Rng, SkCipher,
};
use crate::event::{ChildSa, EspKeys, Event, FailReason, Transmit};
use crate::proposal::{self, ChildSuite, DhGroup, IkeSuite, Proposal};
use crate::ts::{self, TrafficSelector};
use crate::wire::{
    self, emit_chain, emit_encrypted_prefix, parse_chain, raw_body, AuthMethod, AuthPayload,
    DeletePayload, ExchangeType, Flags, HeaderRepr, IdPayload, IdType, KePayload, Message,
    NotifyPayload, NotifyType, Payload, PayloadSlice, PayloadType, ProtocolId,
};

mod fragment;
mod lifetime;
mod nat;
mod rekey;
mod responder_init;

/// Nonce length we send (RFC 7296 §2.10: at least half the PRF key size, 16..=256).
const NONCE_LEN: usize = 32;
/// The NAT-T port (RFC 3948).
pub(crate) const NAT_T_PORT: u16 = 4500;

/// What the endpoint lends an IKE SA while it handles one input.
pub(crate) struct Ctx<'a> {
    pub(crate) config: &'a Config,
    pub(crate) rng: &'a mut dyn Rng,
    pub(crate) now: Instant,
    pub(crate) transmits: &'a mut VecDeque<Transmit>,
    pub(crate) events: &'a mut VecDeque<Event>,
    /// How many other IKE SAs the endpoint holds (INITIAL_CONTACT is only sent without).
    pub(crate) other_sas: usize,
    pub(crate) stats: &'a mut crate::endpoint::Stats,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Initiator: IKE_SA_INIT request sent.
    InitSent,
    /// Initiator: IKE_AUTH request sent.
    AuthSent,
    /// Responder: IKE_SA_INIT answered, waiting for IKE_AUTH.
    HalfOpen,
    /// IKE SA up.
    Established,
    /// Our Delete of the IKE SA is outstanding.
    Deleting,
    /// Gone: the endpoint removes it.
    Dead,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ReqKind {
    Init,
    Auth,
    DeleteIke,
    DeleteChild(Vec<u32>),
    Liveness,
    /// CREATE_CHILD_SA rekeying the Child SA with this inbound SPI.
    RekeyChild(u32),
    /// CREATE_CHILD_SA rekeying the IKE SA.
    RekeyIke,
}

struct Pending {
    msg_id: u32,
    /// The request as sent (several datagrams when fragmented).
    transmit: Vec<Transmit>,
    kind: ReqKind,
    tries: u32,
    deadline: Instant,
}

#[derive(Clone, Debug)]
pub(crate) struct ChildRef {
    pub(crate) local_spi: u32,
    pub(crate) remote_spi: u32,
    local_ts: Vec<TrafficSelector>,
    remote_ts: Vec<TrafficSelector>,
    /// When to start rekeying it (None: not scheduled or already in progress).
    rekey_at: Option<Instant>,
    /// Hard lifetime: deleted at this time if still there.
    expires_at: Option<Instant>,
    /// The redundant half of a rekey collision: deleted at this time.
    delete_at: Option<Instant>,
    /// When we answered the peer's rekey of it (the peer deletes it next; no rekey of
    /// ours for it then).
    replaced_at: Option<Instant>,
    /// When it was made.
    established_at: Instant,
    /// We answered the peer's rekey that made it: the peer's SPI of the Child SA it
    /// replaces, until the peer deletes that one (then it is confirmed).
    unconfirmed: Option<u32>,
}

/// What a new Child SA's keys and selectors come from.
struct NewChild<'a> {
    local_spi: u32,
    remote_spi: u32,
    suite: ChildSuite,
    /// TSi and TSr of the exchange that created it.
    tsi: Vec<TrafficSelector>,
    tsr: Vec<TrafficSelector>,
    /// Whether we initiated that exchange (KEYMAT and TS order, RFC 7296 §2.17).
    we_initiated: bool,
    /// PFS shared secret (CREATE_CHILD_SA with KE).
    g_ir: Option<&'a crate::crypto::Secret>,
    ni: &'a [u8],
    nr: &'a [u8],
    /// Our inbound SPI of the Child SA this one rekeys.
    replaces: Option<u32>,
}

/// One IKE SA.
pub(crate) struct IkeSa {
    pub(crate) initiator: bool,
    pub(crate) spi_i: u64,
    pub(crate) spi_r: u64,
    pub(crate) state: State,
    local: SocketAddr,
    pub(crate) remote: SocketAddr,
    nat: bool,
    /// NAT detection: we are behind a NAT (send keepalives).
    nat_here: bool,
    /// NAT detection: the peer is behind a NAT (follow its address).
    nat_there: bool,
    /// When to send the next NAT keepalive.
    keepalive_at: Option<Instant>,
    dh: Option<DhPrivateKey>,
    ke_group: DhGroup,
    cookie: Option<Vec<u8>>,
    ni: Vec<u8>,
    nr: Vec<u8>,
    /// Initiator: our IKE_SA_INIT request as sent. Responder: our IKE_SA_INIT response.
    own_init: Vec<u8>,
    /// The peer's IKE_SA_INIT message as received (for verifying its AUTH).
    peer_init: Vec<u8>,
    pub(crate) suite: Option<IkeSuite>,
    keys: Option<IkeKeys>,
    sk_out: Option<SkCipher>,
    sk_in: Option<SkCipher>,
    next_req_id: u32,
    pending: Option<Pending>,
    peer_next_id: u32,
    /// Our last response (several datagrams when fragmented), for retransmissions.
    last_resp: Option<(u32, Vec<Transmit>)>,
    /// Both sides support IKE fragmentation (RFC 7383).
    frag_ok: bool,
    /// Fragments of the message being received: (message ID, response?, reassembly).
    frag_in: Option<(u32, bool, wire::Reassembly)>,
    /// A message completed from fragments, for `decrypt`: (message ID, response?,
    /// first inner payload type, inner payloads).
    reassembled: Option<(u32, bool, PayloadType, Vec<u8>)>,
    pub(crate) children: Vec<ChildRef>,
    first_child_spi: u32,
    pub(crate) peer_id: Option<Identity>,
    pub(crate) initial_contact: bool,
    pub(crate) established_at: Option<Instant>,
    queued: VecDeque<ReqKind>,
    /// Last time an authenticated message (or, before that, IKE_SA_INIT) came from the peer.
    last_heard: Instant,
    /// Responder: when to forget a half-open SA that never got IKE_AUTH.
    half_open_until: Option<Instant>,
    /// Liveness-check interval after silence (copied from the configuration).
    dpd_delay: Option<std::time::Duration>,
    /// Our outstanding Child SA rekey.
    child_req: Option<rekey::ChildReq>,
    /// A new IKE SA created by a rekey, for the endpoint to adopt.
    pub(crate) spawned: Vec<IkeSa>,
    /// The peer's colliding IKE SA rekey (RFC 7296 §2.8.2), until ours completes.
    ike_collision: Option<rekey::IkeCollision>,
    /// Replaced by a rekeyed IKE SA: its deletion is not reported.
    rekeyed: bool,
    /// Our outstanding IKE SA rekey.
    ike_req: Option<rekey::IkeReq>,
    /// Our last completed Child SA rekey (for collisions).
    recent_rekey: Option<rekey::RecentRekey>,
    /// Child SA rekeys of the peer we answered: (our old inbound SPI, lowest nonce of
    /// that exchange), the last few (for collisions with a later rekey of ours).
    peer_rekeyed: VecDeque<(u32, Vec<u8>)>,
    /// When to rekey this IKE SA.
    ike_rekey_at: Option<Instant>,
    /// Hard lifetime of this IKE SA (deleted then unless rekeyed).
    ike_expires_at: Option<Instant>,
    /// DH group the peer asked for (INVALID_KE_PAYLOAD) on our last IKE rekey.
    ike_rekey_group: Option<DhGroup>,
}

/// Why an incoming message was dropped without an answer (logged by nobody: the
/// sans-IO core has no logger; kept for tests and debugging).
#[derive(Debug)]
pub(crate) struct Drop(#[allow(dead_code)] pub(crate) &'static str);

type R<T> = Result<T, Drop>;

fn nat_hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> Vec<u8> {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(&spi_i.to_be_bytes());
    ctx.update(&spi_r.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(a) => ctx.update(&a.octets()),
        IpAddr::V6(a) => ctx.update(&a.octets()),
    }
    ctx.update(&addr.port().to_be_bytes());
    ctx.finish().as_ref().to_vec()
}

/// `now + d`, saturating far in the future instead of panicking on overflow (the
/// durations come from the configuration).
pub(crate) fn at(now: Instant, d: std::time::Duration) -> Instant {
    const FAR: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 86_400);
    now.checked_add(d.min(FAR))
        .or_else(|| now.checked_add(std::time::Duration::from_secs(86_400)))
        .unwrap_or(now)
}

/// `d × f` without panicking (saturates).
pub(crate) fn scale(d: std::time::Duration, f: f64) -> std::time::Duration {
    std::time::Duration::try_from_secs_f64(d.as_secs_f64() * f).unwrap_or(std::time::Duration::MAX)
}

fn notify(t: NotifyType, data: Vec<u8>) -> Payload {
    Payload::Notify(NotifyPayload::new(t, data))
}

fn random_u32(rng: &mut dyn Rng) -> u32 {
    loop {
        let mut b = [0u8; 4];
        rng.fill(&mut b);
        let v = u32::from_be_bytes(b);
        // SPIs 0..=255 are reserved (RFC 4303 §2.1).
        if v > 255 {
            return v;
        }
    }
}

pub(crate) fn random_u64(rng: &mut dyn Rng) -> u64 {
    loop {
        let mut b = [0u8; 8];
        rng.fill(&mut b);
        let v = u64::from_be_bytes(b);
        if v != 0 {
            return v;
        }
    }
}

fn id_payload(id: &Identity) -> IdPayload {
    IdPayload {
        id_type: IdType(id.id_type()),
        data: id.data(),
    }
}

/// The address to use as our side when the datagram's `to` is a wildcard.
fn effective_local(to: SocketAddr, config: &Config) -> SocketAddr {
    if to.ip().is_unspecified() {
        SocketAddr::new(config.local_addr.ip(), to.port())
    } else {
        to
    }
}

fn fail_for_notify(t: NotifyType, what: &'static str) -> FailReason {
    match t {
        NotifyType::NO_PROPOSAL_CHOSEN => FailReason::NoProposalChosen { what },
        NotifyType::AUTHENTICATION_FAILED => FailReason::AuthenticationFailed,
        NotifyType::TS_UNACCEPTABLE => FailReason::TsUnacceptable,
        t => FailReason::PeerError(t.0),
    }
}

impl IkeSa {
    fn blank(
        ctx: &Ctx<'_>,
        initiator: bool,
        spi_i: u64,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> IkeSa {
        IkeSa {
            initiator,
            spi_i,
            spi_r: 0,
            state: State::InitSent,
            local,
            remote,
            nat: false,
            nat_here: false,
            nat_there: false,
            keepalive_at: None,
            dh: None,
            ke_group: DhGroup::Modp2048,
            cookie: None,
            ni: Vec::new(),
            nr: Vec::new(),
            own_init: Vec::new(),
            peer_init: Vec::new(),
            suite: None,
            keys: None,
            sk_out: None,
            sk_in: None,
            next_req_id: 0,
            pending: None,
            peer_next_id: 0,
            last_resp: None,
            frag_ok: false,
            frag_in: None,
            reassembled: None,
            children: Vec::new(),
            first_child_spi: 0,
            peer_id: None,
            initial_contact: false,
            established_at: None,
            queued: VecDeque::new(),
            last_heard: ctx.now,
            half_open_until: None,
            dpd_delay: ctx.config.dpd_delay,
            child_req: None,
            spawned: Vec::new(),
            ike_collision: None,
            rekeyed: false,
            ike_req: None,
            recent_rekey: None,
            peer_rekeyed: VecDeque::new(),
            ike_rekey_at: None,
            ike_expires_at: None,
            ike_rekey_group: None,
        }
    }

    /// The next time this SA needs `handle_timeout`.
    pub(crate) fn timeout(&self) -> Option<Instant> {
        let retransmit = self.pending.as_ref().map(|p| p.deadline);
        let half_open = self
            .half_open_until
            .filter(|_| self.state == State::HalfOpen || self.rekeyed);
        let rekey = match self.state {
            State::Established if !self.rekeyed => self
                .children
                .iter()
                .filter_map(|c| c.rekey_at)
                .chain(self.children.iter().filter_map(|c| c.delete_at))
                .chain(self.ike_rekey_at)
                .min(),
            _ => None,
        };
        let expiry = self.next_expiry();
        let keepalive = self
            .keepalive_at
            .filter(|_| self.state == State::Established && !self.rekeyed);
        let dpd = match (self.state, &self.pending, self.dpd_delay) {
            (State::Established, None, Some(d)) if self.queued.is_empty() => {
                Some(at(self.last_heard, d))
            }
            _ => None,
        };
        [retransmit, half_open, dpd, rekey, expiry, keepalive]
            .into_iter()
            .flatten()
            .min()
    }

    /// Traffic from the peer arrived: postpone the next liveness check.
    pub(crate) fn peer_alive(&mut self, now: Instant) {
        if now > self.last_heard {
            self.last_heard = now;
        }
    }

    /// The message ID of our cached last response.
    pub(crate) fn last_resp_id(&self) -> Option<u32> {
        self.last_resp.as_ref().map(|(id, _)| *id)
    }

    pub(crate) fn is_established(&self) -> bool {
        matches!(self.state, State::Established | State::Deleting)
    }

    fn header(&self, exchange: ExchangeType, response: bool, message_id: u32) -> HeaderRepr {
        HeaderRepr {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            exchange_type: exchange,
            flags: Flags {
                initiator: self.initiator,
                version: false,
                response,
            },
            message_id,
        }
    }

    fn transmit(&self, payload: Vec<u8>) -> Transmit {
        Transmit {
            src: self.local,
            dst: self.remote,
            payload,
        }
    }

    // ===== initiator: IKE_SA_INIT =====

    /// Creates an initiator SA and queues its IKE_SA_INIT request.
    pub(crate) fn initiate(ctx: &mut Ctx<'_>) -> Result<IkeSa, FailReason> {
        let spi_i = random_u64(ctx.rng);
        let mut sa = IkeSa::blank(
            ctx,
            true,
            spi_i,
            ctx.config.local_addr,
            ctx.config.remote_addr,
        );
        let group = ctx
            .config
            .ike_proposals
            .first()
            .and_then(|p| p.dh.first().copied())
            .ok_or(FailReason::NoProposalChosen { what: "IKE" })?;
        let mut ni = vec![0u8; NONCE_LEN];
        ctx.rng.fill(&mut ni);
        sa.ni = ni;
        sa.ke_group = group;
        sa.send_init(ctx)?;
        Ok(sa)
    }

    fn send_init(&mut self, ctx: &mut Ctx<'_>) -> Result<(), FailReason> {
        // Keep the key for a COOKIE retry ("all other payloads unchanged", RFC 7296
        // §2.6); a new one for another group after INVALID_KE_PAYLOAD.
        let dh = match self.dh.take() {
            Some(d) if d.group() == self.ke_group => d,
            _ => DhPrivateKey::generate(self.ke_group, ctx.rng)
                .map_err(|e| FailReason::KeyExchange(e.to_string()))?,
        };
        let mut payloads = Vec::new();
        if let Some(c) = &self.cookie {
            payloads.push(notify(NotifyType::COOKIE, c.clone()));
        }
        payloads.push(Payload::Sa(proposal::to_wire_sa(
            &ctx.config.ike_proposals,
            &[],
        )));
        payloads.push(Payload::Ke(KePayload {
            group: self.ke_group.id(),
            data: dh.public_value(),
        }));
        payloads.push(Payload::Nonce(self.ni.clone()));
        payloads.extend(self.nat_notifies(ctx, 0));
        if ctx.config.fragmentation {
            payloads.push(notify(
                NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
                Vec::new(),
            ));
        }
        self.dh = Some(dh);
        let msg = Message {
            header: self.header(ExchangeType::IKE_SA_INIT, false, 0),
            payloads,
        };
        let bytes = msg
            .emit()
            .map_err(|e| FailReason::Protocol(e.to_string()))?;
        self.own_init = bytes.clone();
        self.state = State::InitSent;
        self.next_req_id = 1;
        self.send_request(ctx, 0, ReqKind::Init, vec![bytes]);
        Ok(())
    }

    /// NAT_DETECTION_SOURCE_IP and _DESTINATION_IP for a message from `self.local` to
    /// `self.remote` (faked source hash with `encap = Force`, like strongSwan).
    fn nat_notifies(&self, ctx: &mut Ctx<'_>, spi_r: u64) -> Vec<Payload> {
        let src = if ctx.config.encap == Encap::Force {
            let mut h = vec![0u8; 20];
            ctx.rng.fill(&mut h);
            h
        } else {
            nat_hash(self.spi_i, spi_r, self.local)
        };
        vec![
            notify(NotifyType::NAT_DETECTION_SOURCE_IP, src),
            notify(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                nat_hash(self.spi_i, spi_r, self.remote),
            ),
        ]
    }

    /// Checks the peer's NAT_DETECTION notifies on a message `from` → `to` and records
    /// which side is behind a NAT. Returns whether there is one (or encapsulation is
    /// forced).
    fn detect_nat(
        &mut self,
        ctx: &Ctx<'_>,
        spi_r: u64,
        payloads: &[Payload],
        from: SocketAddr,
        to: SocketAddr,
    ) -> bool {
        let src: Vec<_> = payloads
            .notifies()
            .filter(|n| n.notify_type == NotifyType::NAT_DETECTION_SOURCE_IP)
            .collect();
        if !src.is_empty() {
            let h = nat_hash(self.spi_i, spi_r, from);
            self.nat_there = !src.iter().any(|n| n.data == h);
        }
        if let Some(d) = payloads.notify(NotifyType::NAT_DETECTION_DESTINATION_IP) {
            self.nat_here = d.data != nat_hash(self.spi_i, spi_r, to);
        }
        self.nat_here || self.nat_there || ctx.config.encap == Encap::Force
    }

    fn send_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        msg_id: u32,
        kind: ReqKind,
        datagrams: Vec<Vec<u8>>,
    ) {
        let t: Vec<Transmit> = datagrams.into_iter().map(|b| self.transmit(b)).collect();
        ctx.transmits.extend(t.iter().cloned());
        self.pending = Some(Pending {
            msg_id,
            transmit: t,
            kind,
            tries: 0,
            deadline: at(ctx.now, ctx.config.retransmit_delay(0)),
        });
    }

    fn fail(&mut self, ctx: &mut Ctx<'_>, reason: FailReason) {
        let was_up = self.is_established();
        self.report_deleted(ctx, was_up);
        ctx.events.push_back(Event::Failed(reason));
        self.state = State::Dead;
        self.pending = None;
    }

    /// Reports the children and (if it was up) the IKE SA as deleted.
    fn report_deleted(&mut self, ctx: &mut Ctx<'_>, ike_was_up: bool) {
        for c in self.children.drain(..) {
            ctx.events.push_back(Event::ChildSaDeleted {
                local_spi: c.local_spi,
                remote_spi: c.remote_spi,
            });
        }
        if ike_was_up && !self.rekeyed {
            ctx.events.push_back(Event::IkeSaDeleted {
                spi_i: self.spi_i,
                spi_r: self.spi_r,
            });
        }
    }

    /// Removes the SA silently (e.g. replaced after INITIAL_CONTACT), reporting deletions.
    pub(crate) fn drop_silently(&mut self, ctx: &mut Ctx<'_>) {
        let up = self.is_established();
        self.report_deleted(ctx, up);
        self.state = State::Dead;
        self.pending = None;
    }

    fn handle_init_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        hdr: &HeaderRepr,
        msg: &Message,
        raw: &[u8],
        from: SocketAddr,
        to: SocketAddr,
    ) -> R<()> {
        let p = &msg.payloads;
        // 1. Error notifies that make us retry.
        if let Some(n) = p.notify(NotifyType::COOKIE) {
            if self.cookie.as_deref() == Some(n.data.as_slice()) {
                return Err(Drop("same cookie again"));
            }
            self.cookie = Some(n.data.clone());
            self.pending = None;
            if let Err(e) = self.send_init(ctx) {
                self.fail(ctx, e);
            }
            return Ok(());
        }
        if let Some(n) = p.notify(NotifyType::INVALID_KE_PAYLOAD) {
            let want = <[u8; 2]>::try_from(n.data.as_slice())
                .ok()
                .map(u16::from_be_bytes)
                .and_then(DhGroup::from_id);
            let offered = |g: DhGroup| ctx.config.ike_proposals.iter().any(|p| p.dh.contains(&g));
            match want {
                Some(g) if g != self.ke_group && offered(g) => {
                    self.ke_group = g;
                    self.pending = None;
                    if let Err(e) = self.send_init(ctx) {
                        self.fail(ctx, e);
                    }
                }
                _ => self.fail(ctx, FailReason::NoProposalChosen { what: "IKE" }),
            }
            return Ok(());
        }
        if let Some(n) = p.error_notify() {
            let reason = fail_for_notify(n.notify_type, "IKE");
            self.fail(ctx, reason);
            return Ok(());
        }
        // 2. The chosen proposal must be one of ours.
        if hdr.spi_r == 0 {
            return Err(Drop("IKE_SA_INIT response without responder SPI"));
        }
        let chosen = match p.sa() {
            Some([one]) => Proposal::from_wire(one),
            _ => None,
        };
        let suite = chosen.as_ref().and_then(|c| {
            let s = c.ike_suite()?;
            ctx.config
                .ike_proposals
                .iter()
                .any(|o| o.allows(c))
                .then_some(s)
        });
        let Some(suite) = suite else {
            self.fail(
                ctx,
                FailReason::Protocol("responder chose a proposal we did not offer".into()),
            );
            return Ok(());
        };
        // 3. KE of the chosen group, and the nonce.
        let (Some(ke), Some(nr)) = (p.ke(), p.nonce()) else {
            self.fail(
                ctx,
                FailReason::Protocol("IKE_SA_INIT response without KE or Nonce".into()),
            );
            return Ok(());
        };
        if ke.group != suite.dh.id() || suite.dh != self.ke_group || !(16..=256).contains(&nr.len())
        {
            self.fail(
                ctx,
                FailReason::Protocol("KE group or nonce mismatch".into()),
            );
            return Ok(());
        }
        let Some(dh) = self.dh.take() else {
            return Err(Drop("no DH key"));
        };
        let g_ir = match dh.shared_secret(&ke.data) {
            Ok(s) => s,
            Err(e) => {
                self.fail(ctx, FailReason::KeyExchange(e.to_string()));
                return Ok(());
            }
        };
        self.spi_r = hdr.spi_r;
        self.nr = nr.to_vec();
        self.peer_init = raw.to_vec();
        let keys = match IkeKeys::initial(
            &suite.to_crypto(),
            &g_ir,
            &self.ni,
            &self.nr,
            &self.spi_i.to_be_bytes(),
            &self.spi_r.to_be_bytes(),
        ) {
            Ok(k) => k,
            Err(e) => {
                self.fail(ctx, FailReason::KeyExchange(e.to_string()));
                return Ok(());
            }
        };
        let Ok((out, inb)) = keys.ciphers(true) else {
            self.fail(ctx, FailReason::KeyExchange("SK cipher".into()));
            return Ok(());
        };
        self.keys = Some(keys);
        self.sk_out = Some(out);
        self.sk_in = Some(inb);
        self.suite = Some(suite);
        self.pending = None;
        self.frag_ok = ctx.config.fragmentation
            && p.notify(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED)
                .is_some();
        // 4. NAT detection: float to port 4500 (RFC 7296 §2.23).
        let to = effective_local(to, ctx.config);
        self.nat = self.detect_nat(ctx, self.spi_r, p, from, to);
        if self.nat {
            self.local.set_port(NAT_T_PORT);
            self.remote.set_port(NAT_T_PORT);
        }
        // 5. IKE_AUTH request.
        self.send_auth(ctx);
        Ok(())
    }

    fn send_auth(&mut self, ctx: &mut Ctx<'_>) {
        let cfg = ctx.config;
        self.first_child_spi = random_u32(ctx.rng);
        let (Some(keys), Some(suite)) = (&self.keys, self.suite) else {
            return;
        };
        let idi = id_payload(&cfg.local_id);
        let octets = signed_octets(
            suite.prf,
            &self.own_init,
            &self.nr,
            keys.sk_p(true),
            &idi.to_bytes(),
        );
        let auth = psk_auth(suite.prf, cfg.psk.as_bytes(), &octets);
        let mut inner = vec![Payload::IdI(idi)];
        // Only when we hold no other IKE SA with this peer, in any state: after a restart,
        // not when both sides initiated at the same time (RFC 7296 §2.4).
        if cfg.initial_contact && ctx.other_sas == 0 {
            inner.push(notify(NotifyType::INITIAL_CONTACT, Vec::new()));
        }
        inner.push(Payload::Auth(AuthPayload {
            method: AuthMethod::SHARED_KEY_MIC,
            data: auth,
        }));
        let esp: Vec<Proposal> = cfg.esp_proposals.iter().map(Proposal::without_dh).collect();
        inner.push(Payload::Sa(proposal::to_wire_sa(
            &esp,
            &self.first_child_spi.to_be_bytes(),
        )));
        inner.push(Payload::TsI(ts::to_wire_list(&cfg.local_ts)));
        inner.push(Payload::TsR(ts::to_wire_list(&cfg.remote_ts)));
        match self.encrypt(ctx, ExchangeType::IKE_AUTH, false, 1, &inner) {
            Ok(bytes) => {
                self.state = State::AuthSent;
                self.next_req_id = 2;
                self.send_request(ctx, 1, ReqKind::Auth, bytes);
            }
            Err(e) => self.fail(ctx, e),
        }
    }

    /// Builds a protected message with the given inner payloads: one datagram, or its
    /// fragments (RFC 7383) when it is too long and the peer supports them.
    fn encrypt(
        &self,
        ctx: &mut Ctx<'_>,
        exchange: ExchangeType,
        response: bool,
        msg_id: u32,
        inner: &[Payload],
    ) -> Result<Vec<Vec<u8>>, FailReason> {
        let Some(out) = &self.sk_out else {
            return Err(FailReason::Protocol("no keys".into()));
        };
        let (first, plain) = emit_chain(inner).map_err(|e| FailReason::Protocol(e.to_string()))?;
        let body_len = out.body_len(plain.len());
        if let Some(max) = self.max_datagram(ctx) {
            if wire::ENCRYPTED_BODY_OFFSET + body_len > max {
                let hdr = self.header(exchange, response, msg_id);
                return self.fragments(ctx, out, &hdr, first, &plain, max);
            }
        }
        let mut buf = Vec::with_capacity(wire::ENCRYPTED_BODY_OFFSET + body_len);
        let hdr = self.header(exchange, response, msg_id);
        let off = emit_encrypted_prefix(&mut buf, &hdr, first, body_len)
            .map_err(|e| FailReason::Protocol(e.to_string()))?;
        buf.resize(off + body_len, 0);
        let (aad, body) = buf.split_at_mut(off);
        out.encrypt(aad, &plain, ctx.rng, body)
            .map_err(|e| FailReason::Protocol(e.to_string()))?;
        Ok(vec![buf])
    }

    /// Verifies and decrypts the SK payload of a received message. Returns the inner
    /// payloads and the plaintext (for raw ID bodies).
    fn decrypt(&mut self, bytes: &[u8], msg: &Message) -> R<(PayloadType, Vec<u8>, Vec<Payload>)> {
        if let Some(Payload::EncryptedFragment(_)) = msg.payloads.last() {
            // Reassembled (and every fragment verified) by `add_fragment`.
            let (id, resp) = (msg.header.message_id, msg.header.flags.response);
            return match self.reassembled.take() {
                Some((i, r, first, plain)) if i == id && r == resp => {
                    let inner = parse_chain(first, &plain).map_err(|_| Drop("inner payloads"))?;
                    Ok((first, plain, inner))
                }
                _ => Err(Drop("fragment without reassembly")),
            };
        }
        let inb = self.sk_in.as_ref().ok_or(Drop("no keys"))?;
        let Some(Payload::Encrypted(e)) = msg.payloads.last() else {
            return Err(Drop("no SK payload"));
        };
        let off = bytes
            .len()
            .checked_sub(e.body.len())
            .ok_or(Drop("SK offset"))?;
        let aad = bytes.get(..off).ok_or(Drop("SK offset"))?;
        let plain = inb
            .decrypt(aad, &e.body)
            .map_err(|_| Drop("SK integrity"))?;
        let inner = parse_chain(e.next_payload, &plain).map_err(|_| Drop("inner payloads"))?;
        Ok((e.next_payload, plain, inner))
    }

    fn handle_auth_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        inner: &[Payload],
        first: PayloadType,
        plain: &[u8],
    ) {
        let cfg = ctx.config;
        let (Some(keys), Some(suite)) = (&self.keys, self.suite) else {
            return;
        };
        // 1. The responder refused us.
        let auth = inner.auth();
        if auth.is_none() {
            let reason = inner
                .error_notify()
                .map(|n| fail_for_notify(n.notify_type, "IKE"))
                .unwrap_or(FailReason::Protocol(
                    "IKE_AUTH response without AUTH".into(),
                ));
            self.fail(ctx, reason);
            return;
        }
        // 2. Verify the responder's identity and AUTH.
        let (Some(idr), Some(idr_raw)) = (inner.id_r(), raw_body(first, plain, PayloadType::IDR))
        else {
            self.fail(
                ctx,
                FailReason::Protocol("IKE_AUTH response without IDr".into()),
            );
            return;
        };
        let peer = match peer_identity(idr, cfg) {
            Ok(peer) => peer,
            Err(reason) => {
                self.fail(ctx, reason);
                return;
            }
        };
        let ok = match auth {
            Some(a) => {
                a.method == AuthMethod::SHARED_KEY_MIC
                    && verify_psk_auth(
                        suite.prf,
                        cfg.psk.as_bytes(),
                        &signed_octets(
                            suite.prf,
                            &self.peer_init,
                            &self.ni,
                            keys.sk_p(false),
                            idr_raw,
                        ),
                        &a.data,
                    )
            }
            None => false,
        };
        if !ok {
            self.fail(ctx, FailReason::AuthenticationFailed);
            return;
        }
        self.pending = None;
        self.become_established(ctx, peer);
        // 3. The first Child SA.
        if let Some(n) = inner.error_notify() {
            let reason = fail_for_notify(n.notify_type, "ESP");
            ctx.events.push_back(Event::Failed(reason));
            self.start_delete_ike(ctx);
            return;
        }
        let esp: Vec<Proposal> = cfg.esp_proposals.iter().map(Proposal::without_dh).collect();
        let chosen = match inner.sa() {
            Some([one]) => Proposal::from_wire(one).and_then(|c| {
                let spi = one.spi_u32()?;
                let s = c.child_suite()?;
                esp.iter().any(|o| o.allows(&c)).then_some((spi, s))
            }),
            _ => None,
        };
        let tsi = inner.ts_i().map(ts::from_wire_list).unwrap_or_default();
        let tsr = inner.ts_r().map(ts::from_wire_list).unwrap_or_default();
        let Some((remote_spi, child_suite)) = chosen else {
            ctx.events.push_back(Event::Failed(FailReason::Protocol(
                "responder chose an ESP proposal we did not offer".into(),
            )));
            self.start_delete_ike(ctx);
            return;
        };
        if tsi.is_empty()
            || tsr.is_empty()
            || !ts::is_subset(&tsi, &cfg.local_ts)
            || !ts::is_subset(&tsr, &cfg.remote_ts)
        {
            ctx.events
                .push_back(Event::Failed(FailReason::TsUnacceptable));
            self.start_delete_ike(ctx);
            return;
        }
        let local_spi = self.first_child_spi;
        let (ni, nr) = (self.ni.clone(), self.nr.clone());
        self.install_child(
            ctx,
            NewChild {
                local_spi,
                remote_spi,
                suite: child_suite,
                tsi,
                tsr,
                we_initiated: true,
                g_ir: None,
                ni: &ni,
                nr: &nr,
                replaces: None,
            },
        );
    }

    /// IKE_AUTH succeeded (either role): the SA is up with the authenticated `peer`
    /// identity; starts its rekey, lifetime and keepalive timers and reports it.
    fn become_established(&mut self, ctx: &mut Ctx<'_>, peer: Option<Identity>) {
        self.peer_id = peer;
        self.state = State::Established;
        self.established_at = Some(ctx.now);
        self.ike_rekey_at = rekey::ike_rekey_at(ctx, self.initiator);
        self.ike_expires_at = Some(at(ctx.now, ctx.config.ike_lifetime));
        self.keepalive_at = self.keepalive_interval(ctx).map(|d| at(ctx.now, d));
        ctx.events.push_back(self.established_event());
    }

    fn established_event(&self) -> Event {
        Event::IkeSaEstablished {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            initiator: self.initiator,
            suite: self.suite.unwrap_or(IkeSuite {
                encr: proposal::Encr::AesGcm16 { key_bits: 256 },
                integ: None,
                prf: crate::crypto::Prf::HmacSha256,
                dh: DhGroup::Curve25519,
            }),
            peer_id: self
                .peer_id
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            nat: self.nat,
            remote_addr: self.remote,
        }
    }

    /// Derives KEYMAT and reports a Child SA. `local_ts`/`remote_ts` from our view.
    fn install_child(&mut self, ctx: &mut Ctx<'_>, n: NewChild<'_>) {
        let NewChild {
            local_spi,
            remote_spi,
            suite: child_suite,
            tsi,
            tsr,
            we_initiated,
            g_ir,
            ni,
            nr,
            replaces,
        } = n;
        let (Some(keys), Some(ike)) = (&self.keys, self.suite) else {
            return;
        };
        let Some(suite) = child_suite.esp_suite() else {
            ctx.events
                .push_back(Event::Failed(FailReason::NoProposalChosen { what: "ESP" }));
            return;
        };
        let km =
            match ChildKeys::for_suite(ike.prf, &child_suite.to_crypto(), &keys.sk_d, g_ir, ni, nr)
            {
                Ok(k) => k,
                Err(e) => {
                    ctx.events
                        .push_back(Event::Failed(FailReason::KeyExchange(e.to_string())));
                    return;
                }
            };
        let i2r = join(&km.encr_i2r, &km.integ_i2r);
        let r2i = join(&km.encr_r2i, &km.integ_r2i);
        let elen = km.encr_i2r.len();
        let (keys_in, keys_out, local_ts, remote_ts) = if we_initiated {
            (EspKeys::new(&r2i, elen), EspKeys::new(&i2r, elen), tsi, tsr)
        } else {
            (EspKeys::new(&i2r, elen), EspKeys::new(&r2i, elen), tsr, tsi)
        };
        let rekey_at = ctx.config.child_rekey_time.map(|t| {
            // Never later than 90 % of the lifetime, whatever was configured.
            let t = t.min(scale(ctx.config.child_lifetime, 0.9));
            // The IKE responder waits 5 % longer, so that normally only one side rekeys.
            let t = if self.initiator { t } else { scale(t, 1.05) };
            at(
                ctx.now,
                lifetime::jittered(ctx.rng, t, ctx.config.child_rekey_jitter),
            )
        });
        self.children.push(ChildRef {
            local_spi,
            remote_spi,
            local_ts: local_ts.clone(),
            remote_ts: remote_ts.clone(),
            rekey_at,
            expires_at: Some(at(ctx.now, ctx.config.child_lifetime)),
            delete_at: None,
            replaced_at: None,
            established_at: ctx.now,
            unconfirmed: replaces.filter(|_| !we_initiated).and_then(|old| {
                self.children
                    .iter()
                    .find(|c| c.local_spi == old)
                    .map(|c| c.remote_spi)
            }),
        });
        ctx.events
            .push_back(Event::ChildSaEstablished(Box::new(ChildSa {
                local_spi,
                remote_spi,
                suite,
                child_suite,
                keys_in,
                keys_out,
                local_ts,
                remote_ts,
                lifetime: ctx.config.child_lifetime,
                udp_encap: self.nat,
                local_addr: self.local,
                remote_addr: self.remote,
                esn: child_suite.esn,
                esp_lifetime: ctx.config.esp_lifetime(),
                defer_outbound: replaces.is_some() && !we_initiated,
                replaces,
            })));
    }
}

/// The peer's identity from its IDi/IDr payload; `WrongPeerId` if `remote_id` is
/// configured and this is another one.
fn peer_identity(id: &IdPayload, cfg: &Config) -> Result<Option<Identity>, FailReason> {
    let peer = Identity::from_wire(id.id_type.0, &id.data);
    if let Some(want) = &cfg.remote_id {
        if peer.as_ref() != Some(want) {
            let got = peer.map(|p| p.to_string()).unwrap_or_else(|| "?".into());
            return Err(FailReason::WrongPeerId {
                got,
                want: want.to_string(),
            });
        }
    }
    Ok(peer)
}

fn join(a: &crate::crypto::Secret, b: &crate::crypto::Secret) -> zeroize::Zeroizing<Vec<u8>> {
    let mut v = zeroize::Zeroizing::new(Vec::with_capacity(a.len() + b.len()));
    v.extend_from_slice(a.as_bytes());
    v.extend_from_slice(b.as_bytes());
    v
}

impl IkeSa {
    // ===== requests from the peer =====

    /// Handles a request (IKE_AUTH as responder, INFORMATIONAL, CREATE_CHILD_SA).
    pub(crate) fn handle_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        hdr: &HeaderRepr,
        msg: &Message,
        raw: &[u8],
        from: SocketAddr,
        to: SocketAddr,
    ) -> R<()> {
        // 1. Retransmission of the last request: resend the cached response.
        if let Some((id, t)) = &self.last_resp {
            if *id == hdr.message_id {
                // For a fragmented request, once (on its first fragment, RFC 7383 §2.6.1).
                let first_or_whole = match msg.payloads.last() {
                    Some(Payload::EncryptedFragment(f)) => f.number == 1,
                    _ => true,
                };
                if first_or_whole {
                    ctx.transmits.extend(t.iter().cloned());
                    ctx.stats.resent_responses += 1;
                }
                return Ok(());
            }
        }
        if hdr.message_id != self.peer_next_id {
            return Err(Drop("unexpected message ID"));
        }
        // 2. Integrity first: nothing changes before the SK payload verifies.
        let (first, plain, inner) = self.decrypt(raw, msg)?;
        self.last_heard = ctx.now;
        self.follow_peer(ctx, from, to);
        // 3. The exchange.
        let mut die_after = false;
        let resp = match (self.state, hdr.exchange_type) {
            (State::HalfOpen, ExchangeType::IKE_AUTH) => {
                self.handle_auth_request(ctx, &inner, first, &plain)
            }
            (State::Established | State::Deleting, ExchangeType::INFORMATIONAL) => {
                let (r, die) = self.handle_informational(ctx, &inner);
                die_after = die;
                r
            }
            (State::Established | State::Deleting, ExchangeType::CREATE_CHILD_SA) => {
                self.handle_create_child(ctx, &inner)
            }
            _ => return Err(Drop("exchange not expected in this state")),
        };
        // 4. Answer and cache the answer for retransmissions.
        match self.encrypt(ctx, hdr.exchange_type, true, hdr.message_id, &resp) {
            Ok(datagrams) => {
                let t: Vec<Transmit> = datagrams.into_iter().map(|b| self.transmit(b)).collect();
                ctx.transmits.extend(t.iter().cloned());
                self.last_resp = Some((hdr.message_id, t));
                self.peer_next_id = self.peer_next_id.wrapping_add(1);
            }
            Err(e) => self.fail(ctx, e),
        }
        if die_after {
            self.adopt_collision_winner(ctx);
            self.report_deleted(ctx, true);
            self.state = State::Dead;
            self.pending = None;
        }
        Ok(())
    }

    fn handle_auth_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        inner: &[Payload],
        first: PayloadType,
        plain: &[u8],
    ) -> Vec<Payload> {
        let cfg = ctx.config;
        let (Some(keys), Some(suite)) = (&self.keys, self.suite) else {
            return vec![notify(NotifyType::AUTHENTICATION_FAILED, Vec::new())];
        };
        let auth_failed = |sa: &mut IkeSa, ctx: &mut Ctx<'_>, reason: FailReason| {
            ctx.events.push_back(Event::Failed(reason));
            sa.state = State::Dead;
            vec![notify(NotifyType::AUTHENTICATION_FAILED, Vec::new())]
        };
        // 1. The initiator's identity and AUTH (RFC 7296 §2.15).
        let (Some(idi), Some(idi_raw), Some(auth)) = (
            inner.id_i(),
            raw_body(first, plain, PayloadType::IDI),
            inner.auth(),
        ) else {
            return auth_failed(
                self,
                ctx,
                FailReason::Protocol("IKE_AUTH request without IDi or AUTH".into()),
            );
        };
        let peer = match peer_identity(idi, cfg) {
            Ok(peer) => peer,
            Err(reason) => return auth_failed(self, ctx, reason),
        };
        let octets = signed_octets(
            suite.prf,
            &self.peer_init,
            &self.nr,
            keys.sk_p(true),
            idi_raw,
        );
        if auth.method != AuthMethod::SHARED_KEY_MIC
            || !verify_psk_auth(suite.prf, cfg.psk.as_bytes(), &octets, &auth.data)
        {
            return auth_failed(self, ctx, FailReason::AuthenticationFailed);
        }
        // 2. Our identity and AUTH.
        let idr = id_payload(&cfg.local_id);
        let octets = signed_octets(
            suite.prf,
            &self.own_init,
            &self.ni,
            keys.sk_p(false),
            &idr.to_bytes(),
        );
        let mut resp = vec![
            Payload::IdR(idr),
            Payload::Auth(AuthPayload {
                method: AuthMethod::SHARED_KEY_MIC,
                data: psk_auth(suite.prf, cfg.psk.as_bytes(), &octets),
            }),
        ];
        self.initial_contact = inner.notify(NotifyType::INITIAL_CONTACT).is_some();
        self.become_established(ctx, peer);
        // 3. The first Child SA: proposal (without DH, RFC 7296 §1.2) and selectors.
        let offered: Vec<(u32, u8, Proposal)> = inner
            .sa()
            .unwrap_or(&[])
            .iter()
            .filter_map(|w| Some((w.spi_u32()?, w.number, Proposal::from_wire(w)?.without_dh())))
            .collect();
        let list: Vec<Proposal> = offered.iter().map(|x| x.2.clone()).collect();
        let ours: Vec<Proposal> = cfg.esp_proposals.iter().map(Proposal::without_dh).collect();
        let chosen = proposal::select(&list, &ours)
            .and_then(|(i, c)| Some((offered.get(i)?, c.child_suite()?)));
        let Some(((remote_spi, number, _), child_suite)) = chosen else {
            ctx.events
                .push_back(Event::Failed(FailReason::NoProposalChosen { what: "ESP" }));
            resp.push(notify(NotifyType::NO_PROPOSAL_CHOSEN, Vec::new()));
            return resp;
        };
        let tsi = ts::narrow(
            &inner.ts_i().map(ts::from_wire_list).unwrap_or_default(),
            &cfg.remote_ts,
        );
        let tsr = ts::narrow(
            &inner.ts_r().map(ts::from_wire_list).unwrap_or_default(),
            &cfg.local_ts,
        );
        if tsi.is_empty() || tsr.is_empty() {
            ctx.events
                .push_back(Event::Failed(FailReason::TsUnacceptable));
            resp.push(notify(NotifyType::TS_UNACCEPTABLE, Vec::new()));
            return resp;
        }
        let local_spi = random_u32(ctx.rng);
        resp.push(Payload::Sa(vec![child_suite
            .to_proposal()
            .to_wire(*number, local_spi.to_be_bytes().to_vec())]));
        resp.push(Payload::TsI(ts::to_wire_list(&tsi)));
        resp.push(Payload::TsR(ts::to_wire_list(&tsr)));
        let (ni, nr) = (self.ni.clone(), self.nr.clone());
        self.install_child(
            ctx,
            NewChild {
                local_spi,
                remote_spi: *remote_spi,
                suite: child_suite,
                tsi,
                tsr,
                we_initiated: false,
                g_ir: None,
                ni: &ni,
                nr: &nr,
                replaces: None,
            },
        );
        resp
    }

    /// INFORMATIONAL request: Deletes and liveness checks. Returns the response payloads
    /// and whether the IKE SA dies after answering.
    fn handle_informational(
        &mut self,
        ctx: &mut Ctx<'_>,
        inner: &[Payload],
    ) -> (Vec<Payload>, bool) {
        let mut resp = Vec::new();
        let mut delete_ike = false;
        for d in inner.deletes() {
            match d.protocol {
                ProtocolId::IKE => delete_ike = true,
                ProtocolId::ESP => {
                    let mut ours = Vec::new();
                    for spi in &d.spis {
                        // The peer deletes what a Child SA we answered for replaces: it
                        // has the new one, we may send on it.
                        for c in self.children.iter_mut() {
                            if c.unconfirmed == Some(*spi) {
                                c.unconfirmed = None;
                                ctx.events.push_back(Event::ChildSaConfirmed {
                                    local_spi: c.local_spi,
                                    remote_spi: c.remote_spi,
                                });
                            }
                        }
                        if let Some(pos) = self.children.iter().position(|c| c.remote_spi == *spi) {
                            let c = self.children.remove(pos);
                            ours.push(c.local_spi);
                            ctx.events.push_back(Event::ChildSaDeleted {
                                local_spi: c.local_spi,
                                remote_spi: c.remote_spi,
                            });
                        }
                    }
                    if !ours.is_empty() {
                        resp.push(Payload::Delete(DeletePayload {
                            protocol: ProtocolId::ESP,
                            spis: ours,
                        }));
                    }
                }
                _ => {}
            }
        }
        if delete_ike {
            resp.clear();
        }
        (resp, delete_ike)
    }

    // ===== responses to our requests =====

    /// Handles a response to our outstanding request.
    pub(crate) fn handle_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        hdr: &HeaderRepr,
        msg: &Message,
        raw: &[u8],
        from: SocketAddr,
        to: SocketAddr,
    ) -> R<()> {
        let kind = match &self.pending {
            Some(p) if p.msg_id == hdr.message_id => p.kind.clone(),
            _ => return Err(Drop("no request outstanding with this message ID")),
        };
        if kind == ReqKind::Init {
            if hdr.exchange_type != ExchangeType::IKE_SA_INIT {
                return Err(Drop("not an IKE_SA_INIT response"));
            }
            return self.handle_init_response(ctx, hdr, msg, raw, from, to);
        }
        let (first, plain, inner) = self.decrypt(raw, msg)?;
        self.last_heard = ctx.now;
        self.pending = None;
        if self.is_established() {
            self.follow_peer(ctx, from, to);
        }
        match kind {
            ReqKind::Init => {}
            ReqKind::Auth => self.handle_auth_response(ctx, &inner, first, &plain),
            ReqKind::DeleteIke => {
                self.report_deleted(ctx, true);
                self.state = State::Dead;
            }
            ReqKind::DeleteChild(spis) => {
                for spi in spis {
                    if let Some(pos) = self.children.iter().position(|c| c.local_spi == spi) {
                        let c = self.children.remove(pos);
                        ctx.events.push_back(Event::ChildSaDeleted {
                            local_spi: c.local_spi,
                            remote_spi: c.remote_spi,
                        });
                    }
                }
            }
            ReqKind::Liveness => {}
            ReqKind::RekeyChild(_) => self.handle_rekey_child_response(ctx, &inner),
            ReqKind::RekeyIke => self.handle_rekey_ike_response(ctx, &inner),
        }
        self.flush_queue(ctx);
        Ok(())
    }

    // ===== our requests after establishment =====

    /// Queues (or sends) a Delete of the whole IKE SA.
    pub(crate) fn start_delete_ike(&mut self, ctx: &mut Ctx<'_>) {
        if !self.is_established() {
            // Nothing to tell the peer yet: just forget the SA.
            self.state = State::Dead;
            self.pending = None;
            return;
        }
        if self.state == State::Deleting {
            return;
        }
        self.state = State::Deleting;
        self.queued.clear();
        self.queued.push_back(ReqKind::DeleteIke);
        self.flush_queue(ctx);
    }

    /// Queues (or sends) a Delete of one Child SA, by our (inbound) SPI.
    pub(crate) fn delete_child(&mut self, ctx: &mut Ctx<'_>, local_spi: u32) -> bool {
        if self.state != State::Established
            || !self.children.iter().any(|c| c.local_spi == local_spi)
        {
            return false;
        }
        self.queued.push_back(ReqKind::DeleteChild(vec![local_spi]));
        self.flush_queue(ctx);
        true
    }

    /// Queues (or sends) an empty INFORMATIONAL (liveness check, RFC 7296 §1.4).
    pub(crate) fn check_liveness(&mut self, ctx: &mut Ctx<'_>) {
        if self.state == State::Established {
            self.queued.push_back(ReqKind::Liveness);
            self.flush_queue(ctx);
        }
    }

    pub(crate) fn flush_queue(&mut self, ctx: &mut Ctx<'_>) {
        if self.pending.is_some() || !self.is_established() {
            return;
        }
        let Some(kind) = self.queued.pop_front() else {
            return;
        };
        let (exchange, inner) = match &kind {
            ReqKind::RekeyChild(old) => match self.build_rekey_child(ctx, *old) {
                Some(p) => (ExchangeType::CREATE_CHILD_SA, p),
                None => return self.flush_queue(ctx),
            },
            ReqKind::RekeyIke => match self.build_rekey_ike(ctx) {
                Some(p) => (ExchangeType::CREATE_CHILD_SA, p),
                None => return self.flush_queue(ctx),
            },
            _ => (
                ExchangeType::INFORMATIONAL,
                self.informational_payloads(&kind),
            ),
        };
        let id = self.next_req_id;
        match self.encrypt(ctx, exchange, false, id, &inner) {
            Ok(bytes) => {
                self.next_req_id = self.next_req_id.wrapping_add(1);
                // The peer removes these as soon as our Delete arrives: stop sending on
                // them now (their inbound halves stay until the answer).
                if let ReqKind::DeleteChild(spis) = &kind {
                    for c in self.children.iter().filter(|c| spis.contains(&c.local_spi)) {
                        ctx.events.push_back(Event::ChildSaDeleting {
                            local_spi: c.local_spi,
                            remote_spi: c.remote_spi,
                        });
                    }
                }
                self.send_request(ctx, id, kind, bytes);
            }
            Err(e) => self.fail(ctx, e),
        }
    }

    fn informational_payloads(&self, kind: &ReqKind) -> Vec<Payload> {
        match kind {
            ReqKind::DeleteIke => vec![Payload::Delete(DeletePayload {
                protocol: ProtocolId::IKE,
                spis: Vec::new(),
            })],
            ReqKind::DeleteChild(spis) => vec![Payload::Delete(DeletePayload {
                protocol: ProtocolId::ESP,
                spis: spis.clone(),
            })],
            _ => Vec::new(),
        }
    }

    // ===== timers =====

    /// Retransmits the outstanding request, or gives up (RFC 7296 §2.1).
    pub(crate) fn handle_timeout(&mut self, ctx: &mut Ctx<'_>) {
        // A half-open SA whose IKE_AUTH never came, or a rekeyed one the peer did not
        // delete, is forgotten silently.
        if (self.state == State::HalfOpen || self.rekeyed)
            && self.half_open_until.is_some_and(|t| ctx.now >= t)
        {
            self.state = State::Dead;
            return;
        }
        self.enforce_lifetimes(ctx);
        if self.state == State::Dead {
            return;
        }
        self.nat_keepalive(ctx);
        self.due_rekeys(ctx);
        // Liveness check after `dpd_delay` of silence (RFC 7296 §2.4).
        if let (State::Established, None, Some(d)) = (self.state, &self.pending, self.dpd_delay) {
            if self.queued.is_empty() && ctx.now >= at(self.last_heard, d) {
                self.check_liveness(ctx);
                return;
            }
        }
        let max = ctx.config.retransmit_tries;
        let Some(p) = &mut self.pending else {
            return;
        };
        if ctx.now < p.deadline {
            return;
        }
        if p.tries >= max {
            let tries = p.tries;
            let deleting = p.kind == ReqKind::DeleteIke;
            self.pending = None;
            if deleting {
                self.report_deleted(ctx, true);
                self.state = State::Dead;
            } else {
                let dead_peer = self.is_established() && !self.rekeyed;
                if dead_peer {
                    ctx.events.push_back(Event::DeadPeer {
                        spi_i: self.spi_i,
                        spi_r: self.spi_r,
                        silent_for: ctx.now.saturating_duration_since(self.last_heard),
                        action: ctx.config.dpd_action,
                    });
                }
                self.fail(ctx, FailReason::PeerUnreachable { tries });
                if dead_peer && ctx.config.dpd_action == crate::config::DpdAction::Restart {
                    match IkeSa::initiate(ctx) {
                        Ok(sa) => self.spawned.push(sa),
                        Err(e) => ctx.events.push_back(Event::Failed(e)),
                    }
                }
            }
            return;
        }
        p.tries += 1;
        p.deadline = at(ctx.now, ctx.config.retransmit_delay(p.tries));
        ctx.transmits.extend(p.transmit.iter().cloned());
        ctx.stats.retransmitted += 1;
    }
}
