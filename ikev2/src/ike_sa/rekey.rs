//! CREATE_CHILD_SA (RFC 7296 §1.3): new and rekeyed Child SAs in both roles, with or
//! without PFS, and IKE SA rekeying as responder (§1.3.2, §2.18).

use super::*;

/// Our outstanding CREATE_CHILD_SA request that rekeys a Child SA.
pub(in crate::ike_sa) struct ChildReq {
    /// Our inbound SPI of the Child SA being replaced.
    pub(in crate::ike_sa) old_spi: u32,
    new_spi: u32,
    ni: Vec<u8>,
    dh: Option<DhPrivateKey>,
    tsi: Vec<TrafficSelector>,
    tsr: Vec<TrafficSelector>,
    /// The peer rekeyed the same Child SA meanwhile: the lowest nonce of its exchange.
    collision: Option<Vec<u8>>,
}

/// Our last completed Child SA rekey (old SPI, new SPI, lowest nonce of the exchange),
/// to resolve a collision whose other half arrives after it (RFC 7296 §2.8.1).
pub(in crate::ike_sa) type RecentRekey = (u32, u32, Vec<u8>);

fn min_nonce(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.min(b).to_vec()
}

fn esp_notify(t: NotifyType, spi: u32) -> Payload {
    Payload::Notify(NotifyPayload {
        protocol: ProtocolId::ESP,
        spi: spi.to_be_bytes().to_vec(),
        notify_type: t,
        data: Vec::new(),
    })
}

/// The peer's IKE SA rekey that collided with ours: its new IKE SA, kept aside until our
/// exchange decides which one survives.
pub(in crate::ike_sa) struct IkeCollision {
    sa: Box<IkeSa>,
    /// The lowest nonce of the peer's exchange.
    min_nonce: Vec<u8>,
}

/// Our outstanding IKE SA rekey.
pub(in crate::ike_sa) struct IkeReq {
    spi_i: u64,
    ni: Vec<u8>,
    dh: DhPrivateKey,
}

/// When a new IKE SA should be rekeyed (the IKE responder waits 5 % longer).
pub(in crate::ike_sa) fn ike_rekey_at(ctx: &mut Ctx<'_>, initiator: bool) -> Option<Instant> {
    ctx.config.ike_rekey_time.map(|t| {
        // Never later than 90 % of the lifetime, whatever was configured.
        let t = t.min(scale(ctx.config.ike_lifetime, 0.9));
        let t = if initiator { t } else { scale(t, 1.05) };
        at(
            ctx.now,
            super::lifetime::jittered(ctx.rng, t, ctx.config.ike_rekey_jitter),
        )
    })
}

/// How long a rekeyed (replaced) IKE SA waits for the peer's Delete before it is dropped.
const REKEYED_LINGER: std::time::Duration = std::time::Duration::from_secs(60);
/// Retry delay after a rekey the peer refused temporarily (e.g. a collision): a random
/// time up to this long (at least a third of it), so that two peers retrying do not
/// collide again.
const REKEY_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

/// When to retry a refused rekey.
fn retry_at(ctx: &mut Ctx<'_>) -> Instant {
    let d = super::lifetime::jittered(ctx.rng, REKEY_RETRY, REKEY_RETRY * 2 / 3);
    at(ctx.now, d)
}

impl IkeSa {
    // ===== responder =====

    /// A CREATE_CHILD_SA request: a new or rekeyed Child SA, or an IKE SA rekey.
    pub(in crate::ike_sa) fn handle_create_child(
        &mut self,
        ctx: &mut Ctx<'_>,
        inner: &[Payload],
    ) -> Vec<Payload> {
        let Some(sa) = inner.sa() else {
            return vec![notify(NotifyType::INVALID_SYNTAX, Vec::new())];
        };
        if self.state != State::Established || self.rekeyed {
            return vec![notify(NotifyType::TEMPORARY_FAILURE, Vec::new())];
        }
        if sa.iter().any(|p| p.protocol == ProtocolId::IKE) {
            return self.respond_ike_rekey(ctx, inner);
        }
        // RFC 7296 §2.25.2: no Child SA changes while we rekey the IKE SA (they would be
        // made on the IKE SA that is about to go away).
        if self.ike_req.is_some() {
            return vec![notify(NotifyType::TEMPORARY_FAILURE, Vec::new())];
        }
        let cfg = ctx.config;
        // 1. The Child SA being rekeyed: REKEY_SA carries the sender's inbound SPI.
        let rekeyed = inner.notify(NotifyType::REKEY_SA).map(|n| n.spi_u32());
        if let Some(spi) = rekeyed {
            match spi {
                Some(s) if self.children.iter().any(|c| c.remote_spi == s) => {}
                _ => return vec![esp_notify(NotifyType::CHILD_SA_NOT_FOUND, spi.unwrap_or(0))],
            }
        }
        let Some(ni) = inner.nonce().filter(|n| (16..=256).contains(&n.len())) else {
            return vec![notify(NotifyType::INVALID_SYNTAX, Vec::new())];
        };
        // 2. Proposal: with a KE payload the DH transforms count (PFS); without, the
        //    proposals are compared without them (and ours must not require PFS).
        let ke = inner.ke();
        let offered: Vec<(u32, u8, Proposal)> = sa
            .iter()
            .filter_map(|w| {
                let p = Proposal::from_wire(w)?;
                let p = if ke.is_some() { p } else { p.without_dh() };
                Some((w.spi_u32()?, w.number, p))
            })
            .collect();
        let list: Vec<Proposal> = offered.iter().map(|x| x.2.clone()).collect();
        // A rekey without KE against our PFS proposals, when allowed (Azure).
        let ours: Vec<Proposal> = if ke.is_none() && cfg.accept_rekey_without_pfs {
            cfg.esp_proposals.iter().map(Proposal::without_dh).collect()
        } else {
            cfg.esp_proposals.clone()
        };
        let chosen = proposal::select(&list, &ours)
            .and_then(|(i, c)| Some((offered.get(i)?, c.child_suite()?)));
        let Some(((remote_spi, number, _), suite)) = chosen else {
            ctx.events
                .push_back(Event::Failed(FailReason::NoProposalChosen { what: "ESP" }));
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN, Vec::new())];
        };
        let (remote_spi, number) = (*remote_spi, *number);
        // 3. PFS.
        let mut g_ir = None;
        let mut ke_resp = None;
        if let Some(g) = suite.dh {
            let Some(ke) = ke else {
                return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN, Vec::new())];
            };
            if ke.group != g.id() {
                return vec![notify(
                    NotifyType::INVALID_KE_PAYLOAD,
                    g.id().to_be_bytes().to_vec(),
                )];
            }
            let Ok(dh) = DhPrivateKey::generate(g, ctx.rng) else {
                return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN, Vec::new())];
            };
            let Ok(s) = dh.shared_secret(&ke.data) else {
                return vec![notify(NotifyType::INVALID_SYNTAX, Vec::new())];
            };
            g_ir = Some(s);
            ke_resp = Some(KePayload {
                group: g.id(),
                data: dh.public_value(),
            });
        }
        // 4. Selectors.
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
            return vec![notify(NotifyType::TS_UNACCEPTABLE, Vec::new())];
        }
        // 5. The new Child SA and the answer.
        let local_spi = random_u32(ctx.rng);
        let mut nr = vec![0u8; NONCE_LEN];
        ctx.rng.fill(&mut nr);
        let mut resp = vec![
            Payload::Sa(vec![suite
                .to_proposal()
                .to_wire(number, local_spi.to_be_bytes().to_vec())]),
            Payload::Nonce(nr.clone()),
        ];
        if let Some(k) = ke_resp {
            resp.push(Payload::Ke(k));
        }
        resp.push(Payload::TsI(ts::to_wire_list(&tsi)));
        resp.push(Payload::TsR(ts::to_wire_list(&tsr)));
        self.install_child(
            ctx,
            NewChild {
                local_spi,
                remote_spi,
                suite,
                tsi,
                tsr,
                we_initiated: false,
                g_ir: g_ir.as_ref(),
                ni,
                nr: &nr,
                replaces: rekeyed.flatten().and_then(|s| {
                    self.children
                        .iter()
                        .find(|c| c.remote_spi == s)
                        .map(|c| c.local_spi)
                }),
            },
        );
        // Rekey collision (RFC 7296 §2.8.1): both sides rekeyed the same Child SA. The
        // new Child SA made by the exchange with the lowest of the four nonces is deleted
        // by the side that created it.
        if let Some(Some(s)) = rekeyed {
            let theirs = min_nonce(ni, &nr);
            let old_local = self
                .children
                .iter()
                .find(|c| c.remote_spi == s)
                .map(|c| c.local_spi);
            if let Some(req) = self
                .child_req
                .as_mut()
                .filter(|r| Some(r.old_spi) == old_local)
            {
                req.collision = Some(theirs.clone());
            } else {
                // Remember it: should we rekey the same Child SA ourselves before the
                // peer deletes it (its exchange may be slow), that is a collision too.
                if let Some(old) = old_local {
                    self.peer_rekeyed.push_back((old, theirs.clone()));
                    if self.peer_rekeyed.len() > 8 {
                        self.peer_rekeyed.pop_front();
                    }
                }
            }
            if let Some((old, new, ours)) = self.recent_rekey.as_ref().filter(|_| {
                self.child_req
                    .as_ref()
                    .is_none_or(|r| Some(r.old_spi) != old_local)
            }) {
                if Some(*old) == old_local && *ours < theirs {
                    // Our new Child SA is redundant, but we already deleted the old one:
                    // give the peer time to complete its exchange (our answer may be lost
                    // or overtaken) before its only other Child SA goes.
                    let grace = (0..3).map(|n| cfg.retransmit_delay(n)).sum();
                    let new = *new;
                    if let Some(c) = self.children.iter_mut().find(|c| c.local_spi == new) {
                        c.delete_at = Some(at(ctx.now, grace));
                        c.rekey_at = None;
                    }
                }
            }
        }
        // The peer deletes the old Child SA next; should its Delete never come (its
        // exchange failed), our own schedule still rekeys it, but not before the peer had
        // time to delete it.
        if let Some(Some(s)) = rekeyed {
            let later = at(ctx.now, REKEY_RETRY);
            for c in self.children.iter_mut().filter(|c| c.remote_spi == s) {
                c.rekey_at = c.rekey_at.map(|t| t.max(later));
                c.replaced_at = Some(ctx.now);
            }
        }
        resp
    }

    /// IKE SA rekey requested by the peer (RFC 7296 §1.3.2, §2.18): the new IKE SA takes
    /// over the Child SAs; the peer then deletes this one.
    fn respond_ike_rekey(&mut self, ctx: &mut Ctx<'_>, inner: &[Payload]) -> Vec<Payload> {
        let cfg = ctx.config;
        // RFC 7296 §2.25.2: not while we are creating, rekeying or deleting a Child SA of
        // this IKE SA (its answer would arrive on the IKE SA being replaced).
        let child_busy = self
            .pending
            .as_ref()
            .is_some_and(|p| matches!(p.kind, ReqKind::RekeyChild(_) | ReqKind::DeleteChild(_)));
        if child_busy || self.child_req.is_some() {
            return vec![notify(NotifyType::TEMPORARY_FAILURE, Vec::new())];
        }
        let (Some(sa), Some(ke), Some(ni)) = (inner.sa(), inner.ke(), inner.nonce()) else {
            return vec![notify(NotifyType::INVALID_SYNTAX, Vec::new())];
        };
        if !(16..=256).contains(&ni.len()) {
            return vec![notify(NotifyType::INVALID_SYNTAX, Vec::new())];
        }
        let offered: Vec<(u8, u64, Proposal)> = sa
            .iter()
            .filter_map(|w| Some((w.number, w.spi_u64()?, Proposal::from_wire(w)?)))
            .collect();
        let list: Vec<Proposal> = offered.iter().map(|x| x.2.clone()).collect();
        // Prefer the group of the KE payload if acceptable (as in IKE_SA_INIT).
        let restricted: Vec<Proposal> = list
            .iter()
            .map(|x| Proposal {
                dh: x
                    .dh
                    .iter()
                    .copied()
                    .filter(|d| d.id() == ke.group)
                    .collect(),
                ..x.clone()
            })
            .collect();
        let choice = proposal::select(&restricted, &cfg.ike_proposals)
            .or_else(|| proposal::select(&list, &cfg.ike_proposals))
            .and_then(|(i, c)| Some((offered.get(i)?, c.ike_suite()?)));
        let Some(((number, spi_i, _), suite)) = choice else {
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN, Vec::new())];
        };
        if suite.dh.id() != ke.group {
            return vec![notify(
                NotifyType::INVALID_KE_PAYLOAD,
                suite.dh.id().to_be_bytes().to_vec(),
            )];
        }
        let (number, spi_i) = (*number, *spi_i);
        let Ok(dh) = DhPrivateKey::generate(suite.dh, ctx.rng) else {
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN, Vec::new())];
        };
        let Ok(g_ir) = dh.shared_secret(&ke.data) else {
            return vec![notify(NotifyType::INVALID_SYNTAX, Vec::new())];
        };
        let spi_r = random_u64(ctx.rng);
        let mut nr = vec![0u8; NONCE_LEN];
        ctx.rng.fill(&mut nr);
        let Some(old) = &self.keys else {
            return vec![notify(NotifyType::TEMPORARY_FAILURE, Vec::new())];
        };
        let Ok(keys) = old.rekey(
            &suite.to_crypto(),
            &g_ir,
            ni,
            &nr,
            &spi_i.to_be_bytes(),
            &spi_r.to_be_bytes(),
        ) else {
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN, Vec::new())];
        };
        let Ok((out, inb)) = keys.ciphers(false) else {
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN, Vec::new())];
        };
        // The peer initiated the rekey, so it is the new original initiator (§2.18);
        // it deletes this IKE SA next.
        let new = self.successor(ctx, false, (spi_i, spi_r), suite, keys, (out, inb));
        if self.ike_req.is_some() {
            // Both rekey at once (RFC 7296 §2.8.2): decided when our exchange completes.
            self.ike_collision = Some(IkeCollision {
                sa: Box::new(new),
                min_nonce: min_nonce(ni, &nr),
            });
        } else {
            self.adopt(ctx, new);
            self.state = State::Deleting;
        }
        vec![
            Payload::Sa(vec![suite
                .to_proposal()
                .to_wire(number, spi_r.to_be_bytes().to_vec())]),
            Payload::Nonce(nr),
            Payload::Ke(KePayload {
                group: suite.dh.id(),
                data: dh.public_value(),
            }),
        ]
    }

    /// The new IKE SA made by a rekey: established, without Child SAs yet.
    fn successor(
        &self,
        ctx: &mut Ctx<'_>,
        we_initiated: bool,
        (spi_i, spi_r): (u64, u64),
        suite: IkeSuite,
        keys: IkeKeys,
        (out, inb): (SkCipher, SkCipher),
    ) -> IkeSa {
        let mut new = IkeSa::blank(ctx, we_initiated, spi_i, self.local, self.remote);
        new.spi_r = spi_r;
        new.state = State::Established;
        new.nat = self.nat;
        new.nat_here = self.nat_here;
        new.nat_there = self.nat_there;
        new.frag_ok = self.frag_ok;
        new.keepalive_at = new.keepalive_interval(ctx).map(|d| at(ctx.now, d));
        new.ke_group = suite.dh;
        new.suite = Some(suite);
        new.keys = Some(keys);
        new.sk_out = Some(out);
        new.sk_in = Some(inb);
        new.peer_id = self.peer_id.clone();
        new.established_at = Some(ctx.now);
        new.ike_rekey_at = ike_rekey_at(ctx, we_initiated);
        new.ike_expires_at = Some(at(ctx.now, ctx.config.ike_lifetime));
        new
    }

    /// Moves everything to `new` (spawned for the endpoint to adopt) and marks this IKE
    /// SA as replaced.
    fn adopt(&mut self, ctx: &mut Ctx<'_>, mut new: IkeSa) {
        new.children = std::mem::take(&mut self.children);
        ctx.events.push_back(Event::IkeSaRekeyed {
            old_spi_i: self.spi_i,
            old_spi_r: self.spi_r,
            spi_i: new.spi_i,
            spi_r: new.spi_r,
            suite: new.suite.unwrap_or(self.suite.unwrap_or(IkeSuite {
                encr: proposal::Encr::AesGcm16 { key_bits: 256 },
                integ: None,
                prf: crate::crypto::Prf::HmacSha256,
                dh: DhGroup::Curve25519,
            })),
        });
        // Child SA work queued on this IKE SA continues on the new one.
        new.queued = self
            .queued
            .drain(..)
            .filter(|k| matches!(k, ReqKind::RekeyChild(_) | ReqKind::DeleteChild(_)))
            .collect();
        self.spawned.push(new);
        self.mark_replaced(ctx);
        self.ike_collision = None;
    }

    /// This IKE SA is replaced (or redundant): it makes no more requests, reports nothing
    /// when it goes, and is forgotten after a while if the peer does not delete it.
    fn mark_replaced(&mut self, ctx: &Ctx<'_>) {
        self.rekeyed = true;
        self.ike_rekey_at = None;
        self.half_open_until = Some(at(ctx.now, REKEYED_LINGER));
    }

    /// A Delete of this IKE SA while the peer's colliding rekey is stored: the peer's new
    /// IKE SA won (RFC 7296 §2.8.2); move to it before this one goes.
    pub(in crate::ike_sa) fn adopt_collision_winner(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(c) = self.ike_collision.take() {
            self.adopt(ctx, *c.sa);
        }
    }

    // ===== initiator =====

    /// Queues a rekey of this IKE SA (CREATE_CHILD_SA with an IKE proposal).
    pub(crate) fn rekey_ike(&mut self, ctx: &mut Ctx<'_>) -> bool {
        if self.state != State::Established
            || self.rekeyed
            || self.queued.contains(&ReqKind::RekeyIke)
            || self.ike_req.is_some()
        {
            return false;
        }
        self.ike_rekey_at = None;
        self.queued.push_back(ReqKind::RekeyIke);
        self.flush_queue(ctx);
        true
    }

    /// The payloads of our IKE SA rekey request.
    pub(in crate::ike_sa) fn build_rekey_ike(&mut self, ctx: &mut Ctx<'_>) -> Option<Vec<Payload>> {
        let cfg = ctx.config;
        let offered = |g: DhGroup| cfg.ike_proposals.iter().any(|p| p.dh.contains(&g));
        let group = self
            .ike_rekey_group
            .filter(|g| offered(*g))
            .or(self.suite.map(|s| s.dh).filter(|g| offered(*g)))
            .or(cfg
                .ike_proposals
                .first()
                .and_then(|p| p.dh.first().copied()))?;
        let dh = DhPrivateKey::generate(group, ctx.rng).ok()?;
        let spi_i = random_u64(ctx.rng);
        let mut ni = vec![0u8; NONCE_LEN];
        ctx.rng.fill(&mut ni);
        let p = vec![
            Payload::Sa(proposal::to_wire_sa(
                &cfg.ike_proposals,
                &spi_i.to_be_bytes(),
            )),
            Payload::Nonce(ni.clone()),
            Payload::Ke(KePayload {
                group: group.id(),
                data: dh.public_value(),
            }),
        ];
        self.ike_req = Some(IkeReq { spi_i, ni, dh });
        Some(p)
    }

    /// The answer to our IKE SA rekey: hand over to the new IKE SA, delete this one.
    pub(in crate::ike_sa) fn handle_rekey_ike_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        inner: &[Payload],
    ) {
        let Some(req) = self.ike_req.take() else {
            return;
        };
        let cfg = ctx.config;
        if let Some(n) = inner.error_notify() {
            if self.ike_collision.is_some() {
                // Ours failed, the peer's colliding rekey stands; the peer deletes this
                // IKE SA.
                self.adopt_collision_winner(ctx);
                self.state = State::Deleting;
                return;
            }
            let want = <[u8; 2]>::try_from(n.data.as_slice())
                .ok()
                .map(u16::from_be_bytes)
                .and_then(DhGroup::from_id);
            match (n.notify_type, want) {
                (NotifyType::INVALID_KE_PAYLOAD, Some(g)) if g != req.dh.group() => {
                    self.ike_rekey_group = Some(g);
                    self.queued.push_back(ReqKind::RekeyIke);
                }
                (NotifyType::TEMPORARY_FAILURE, _) => {
                    self.ike_rekey_at = Some(retry_at(ctx));
                }
                (t, _) => {
                    ctx.events
                        .push_back(Event::Failed(fail_for_notify(t, "IKE")));
                }
            }
            return;
        }
        let chosen = match inner.sa() {
            Some([one]) if one.protocol == ProtocolId::IKE => {
                Proposal::from_wire(one).and_then(|c| {
                    let spi = one.spi_u64()?;
                    let s = c.ike_suite()?;
                    cfg.ike_proposals
                        .iter()
                        .any(|o| o.allows(&c))
                        .then_some((spi, s))
                })
            }
            _ => None,
        };
        let nr = inner.nonce().filter(|n| (16..=256).contains(&n.len()));
        let (Some((spi_r, suite)), Some(nr), Some(ke)) = (chosen, nr, inner.ke()) else {
            ctx.events.push_back(Event::Failed(FailReason::Protocol(
                "bad IKE rekey response".into(),
            )));
            return;
        };
        if suite.dh != req.dh.group() || ke.group != suite.dh.id() {
            ctx.events.push_back(Event::Failed(FailReason::Protocol(
                "IKE rekey response KE does not match".into(),
            )));
            return;
        }
        let keys = req
            .dh
            .shared_secret(&ke.data)
            .map_err(|e| e.to_string())
            .and_then(|g_ir| {
                let old = self.keys.as_ref().ok_or("no keys".to_string())?;
                old.rekey(
                    &suite.to_crypto(),
                    &g_ir,
                    &req.ni,
                    nr,
                    &req.spi_i.to_be_bytes(),
                    &spi_r.to_be_bytes(),
                )
                .map_err(|e| e.to_string())
            });
        let (keys, ciphers) = match keys.and_then(|k| {
            let c = k.ciphers(true).map_err(|e| e.to_string())?;
            Ok((k, c))
        }) {
            Ok(x) => x,
            Err(e) => {
                ctx.events
                    .push_back(Event::Failed(FailReason::KeyExchange(e)));
                return;
            }
        };
        let mut ours = self.successor(ctx, true, (req.spi_i, spi_r), suite, keys, ciphers);
        match self.ike_collision.take() {
            // RFC 7296 §2.8.2: of two IKE SAs made by simultaneous rekeys, the one whose
            // exchange had the lowest of the four nonces is redundant and deleted by its
            // initiator; the winner's initiator deletes the old IKE SA.
            Some(theirs) if min_nonce(&req.ni, nr) < theirs.min_nonce => {
                ours.mark_replaced(ctx);
                ours.start_delete_ike(ctx);
                self.spawned.push(ours);
                self.adopt(ctx, *theirs.sa);
            }
            Some(theirs) => {
                let mut redundant = *theirs.sa;
                redundant.mark_replaced(ctx);
                self.spawned.push(redundant);
                self.adopt(ctx, ours);
                self.start_delete_ike(ctx);
            }
            None => {
                self.adopt(ctx, ours);
                // RFC 7296 §2.18: the rekey initiator deletes the old IKE SA.
                self.start_delete_ike(ctx);
            }
        }
    }

    /// Queues a rekey of one Child SA (by our inbound SPI). False if there is no such
    /// Child SA or the IKE SA is not up.
    pub(crate) fn rekey_child(&mut self, ctx: &mut Ctx<'_>, local_spi: u32) -> bool {
        if self.state != State::Established || self.rekeyed {
            return false;
        }
        let Some(c) = self.children.iter_mut().find(|c| c.local_spi == local_spi) else {
            return false;
        };
        c.rekey_at = None;
        self.queued.push_back(ReqKind::RekeyChild(local_spi));
        self.flush_queue(ctx);
        true
    }

    /// Starts rekeys whose time has come (called from `handle_timeout`).
    pub(in crate::ike_sa) fn due_rekeys(&mut self, ctx: &mut Ctx<'_>) {
        if self.state != State::Established || self.rekeyed {
            return;
        }
        if self.ike_rekey_at.is_some_and(|t| ctx.now >= t) {
            self.rekey_ike(ctx);
        }
        let redundant: Vec<u32> = self
            .children
            .iter_mut()
            .filter(|c| c.delete_at.is_some_and(|t| ctx.now >= t))
            .map(|c| {
                c.delete_at = None;
                c.local_spi
            })
            .collect();
        if !redundant.is_empty() {
            self.queued.push_back(ReqKind::DeleteChild(redundant));
            self.flush_queue(ctx);
        }
        let due: Vec<u32> = self
            .children
            .iter()
            .filter(|c| c.rekey_at.is_some_and(|t| ctx.now >= t))
            .map(|c| c.local_spi)
            .collect();
        for spi in due {
            self.rekey_child(ctx, spi);
        }
    }

    /// The payloads of a CREATE_CHILD_SA request rekeying `old_spi`, or `None` if that
    /// Child SA is gone.
    pub(in crate::ike_sa) fn build_rekey_child(
        &mut self,
        ctx: &mut Ctx<'_>,
        old_spi: u32,
    ) -> Option<Vec<Payload>> {
        let c = self.children.iter_mut().find(|c| c.local_spi == old_spi)?;
        // The peer rekeyed it a moment ago (our rekey was still queued): it deletes it
        // next. Should it not, our schedule tries again later.
        if let Some(t) = c.replaced_at {
            let later = at(t, REKEY_RETRY);
            if ctx.now < later {
                c.rekey_at = Some(later);
                return None;
            }
        }
        let c = c.clone();
        let cfg = ctx.config;
        let new_spi = random_u32(ctx.rng);
        let mut ni = vec![0u8; NONCE_LEN];
        ctx.rng.fill(&mut ni);
        // PFS: a KE for the first group of the first proposal, if configured.
        let group = cfg
            .esp_proposals
            .first()
            .and_then(|p| p.dh.first().copied());
        let dh = match group {
            Some(g) => Some(DhPrivateKey::generate(g, ctx.rng).ok()?),
            None => None,
        };
        let mut p = vec![
            esp_notify(NotifyType::REKEY_SA, old_spi),
            Payload::Sa(proposal::to_wire_sa(
                &cfg.esp_proposals,
                &new_spi.to_be_bytes(),
            )),
            Payload::Nonce(ni.clone()),
        ];
        if let Some(d) = &dh {
            p.push(Payload::Ke(KePayload {
                group: d.group().id(),
                data: d.public_value(),
            }));
        }
        p.push(Payload::TsI(ts::to_wire_list(&c.local_ts)));
        p.push(Payload::TsR(ts::to_wire_list(&c.remote_ts)));
        self.child_req = Some(ChildReq {
            old_spi,
            new_spi,
            ni,
            dh,
            tsi: c.local_ts,
            tsr: c.remote_ts,
            collision: None,
        });
        Some(p)
    }

    /// The answer to our Child SA rekey: install the new one, then delete the old one
    /// (make-before-break).
    pub(in crate::ike_sa) fn handle_rekey_child_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        inner: &[Payload],
    ) {
        let Some(req) = self.child_req.take() else {
            return;
        };
        let cfg = ctx.config;
        let retry_later = |sa: &mut IkeSa, ctx: &mut Ctx<'_>| {
            let t = retry_at(ctx);
            if let Some(c) = sa.children.iter_mut().find(|c| c.local_spi == req.old_spi) {
                c.rekey_at = Some(t);
            }
        };
        if let Some(n) = inner.error_notify() {
            if n.notify_type == NotifyType::CHILD_SA_NOT_FOUND {
                // The peer no longer has it (its own rekey or Delete crossed ours): it is
                // gone; nothing to retry (RFC 7296 §2.25).
                if let Some(pos) = self
                    .children
                    .iter()
                    .position(|c| c.local_spi == req.old_spi)
                {
                    let c = self.children.remove(pos);
                    ctx.events.push_back(Event::ChildSaDeleted {
                        local_spi: c.local_spi,
                        remote_spi: c.remote_spi,
                    });
                }
                return;
            }
            if n.notify_type != NotifyType::TEMPORARY_FAILURE {
                ctx.events
                    .push_back(Event::Failed(fail_for_notify(n.notify_type, "ESP")));
            }
            retry_later(self, ctx);
            return;
        }
        let chosen = match inner.sa() {
            Some([one]) => Proposal::from_wire(one).and_then(|c| {
                let spi = one.spi_u32()?;
                let s = c.child_suite()?;
                cfg.esp_proposals
                    .iter()
                    .any(|o| o.allows(&c))
                    .then_some((spi, s))
            }),
            _ => None,
        };
        let nr = inner.nonce().filter(|n| (16..=256).contains(&n.len()));
        let (Some((remote_spi, suite)), Some(nr)) = (chosen, nr) else {
            ctx.events.push_back(Event::Failed(FailReason::Protocol(
                "bad CREATE_CHILD_SA response".into(),
            )));
            retry_later(self, ctx);
            return;
        };
        let g_ir = match (suite.dh, &req.dh, inner.ke()) {
            (None, _, _) => None,
            (Some(g), Some(d), Some(ke)) if d.group() == g && ke.group == g.id() => {
                match d.shared_secret(&ke.data) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        ctx.events
                            .push_back(Event::Failed(FailReason::KeyExchange(e.to_string())));
                        retry_later(self, ctx);
                        return;
                    }
                }
            }
            _ => {
                ctx.events.push_back(Event::Failed(FailReason::Protocol(
                    "CREATE_CHILD_SA response KE does not match".into(),
                )));
                retry_later(self, ctx);
                return;
            }
        };
        let tsi = inner.ts_i().map(ts::from_wire_list).unwrap_or_default();
        let tsr = inner.ts_r().map(ts::from_wire_list).unwrap_or_default();
        if tsi.is_empty()
            || tsr.is_empty()
            || !ts::is_subset(&tsi, &req.tsi)
            || !ts::is_subset(&tsr, &req.tsr)
        {
            ctx.events
                .push_back(Event::Failed(FailReason::TsUnacceptable));
            retry_later(self, ctx);
            return;
        }
        self.install_child(
            ctx,
            NewChild {
                local_spi: req.new_spi,
                remote_spi,
                suite,
                tsi,
                tsr,
                we_initiated: true,
                g_ir: g_ir.as_ref(),
                ni: &req.ni,
                nr,
                replaces: Some(req.old_spi),
            },
        );
        let ours = min_nonce(&req.ni, nr);
        // The colliding exchange of the peer: one that crossed ours, or one we answered
        // before ours started.
        let theirs = req.collision.clone().or_else(|| {
            self.peer_rekeyed
                .iter()
                .rev()
                .find(|(old, _)| *old == req.old_spi)
                .map(|(_, n)| n.clone())
        });
        let delete = if theirs.is_some_and(|theirs| ours < theirs) {
            // Our new Child SA is the redundant one of a collision (RFC 7296 §2.8.1): we
            // delete it; the old one is deleted by the winner's initiator when its
            // exchange completes. Should that never happen, our schedule rekeys it.
            let t = retry_at(ctx);
            if let Some(c) = self
                .children
                .iter_mut()
                .find(|c| c.local_spi == req.old_spi)
            {
                c.rekey_at = Some(t + REKEY_RETRY);
            }
            vec![req.new_spi]
        } else {
            vec![req.old_spi]
        };
        self.recent_rekey = Some((req.old_spi, req.new_spi, ours));
        self.queued.push_back(ReqKind::DeleteChild(delete));
    }
}
