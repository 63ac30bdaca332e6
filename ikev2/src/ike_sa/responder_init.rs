//! The responder's side of IKE_SA_INIT (RFC 7296 §1.2): proposal and group selection,
//! INVALID_KE_PAYLOAD / NO_PROPOSAL_CHOSEN answers, retransmitted requests.

use super::*;

// ===== responder: IKE_SA_INIT =====

impl IkeSa {
    /// Handles an IKE_SA_INIT request for a new IKE SA (we are the responder).
    /// Returns the half-open SA, or `None` after answering with an error notify.
    pub(crate) fn respond_init(
        ctx: &mut Ctx<'_>,
        hdr: &HeaderRepr,
        msg: &Message,
        raw: &[u8],
        from: SocketAddr,
        to: SocketAddr,
    ) -> Option<IkeSa> {
        let cfg = ctx.config;
        let local = effective_local(to, cfg);
        let p = &msg.payloads;
        // Every refusal is an unprotected IKE_SA_INIT response with one error notify; no
        // state is kept.
        let refuse = |ctx: &mut Ctx<'_>, t: NotifyType, data: Vec<u8>| {
            crate::dos::reply(ctx.transmits, hdr, local, from, t, data);
        };
        // 1. Select a proposal (RFC 7296 §2.7), keeping the initiator's numbering.
        let offered: Vec<(u8, Proposal)> = p
            .sa()
            .unwrap_or(&[])
            .iter()
            .filter_map(|w| Proposal::from_wire(w).map(|x| (w.number, x)))
            .collect();
        let list: Vec<Proposal> = offered.iter().map(|(_, x)| x.clone()).collect();
        let Some((idx, chosen)) = proposal::select(&list, &cfg.ike_proposals) else {
            refuse(ctx, NotifyType::NO_PROPOSAL_CHOSEN, Vec::new());
            ctx.events
                .push_back(Event::Failed(FailReason::NoProposalChosen { what: "IKE" }));
            return None;
        };
        let (Some(ke), Some(ni)) = (p.ke(), p.nonce()) else {
            refuse(ctx, NotifyType::INVALID_SYNTAX, Vec::new());
            return None;
        };
        if !(16..=256).contains(&ni.len()) {
            refuse(ctx, NotifyType::INVALID_SYNTAX, Vec::new());
            return None;
        }
        // 2. Prefer the group the initiator sent a KE for, if acceptable; otherwise
        //    INVALID_KE_PAYLOAD with the group we want (RFC 7296 §1.2).
        let mut choice = (idx, chosen);
        let mut suite = choice.1.ike_suite();
        if let (Some(s), Some(g)) = (suite, DhGroup::from_id(ke.group)) {
            if s.dh != g {
                let restricted: Vec<Proposal> = list
                    .iter()
                    .map(|x| Proposal {
                        dh: x.dh.iter().copied().filter(|d| *d == g).collect(),
                        ..x.clone()
                    })
                    .collect();
                if let Some(c) = proposal::select(&restricted, &cfg.ike_proposals) {
                    suite = c.1.ike_suite();
                    choice = c;
                }
            }
        }
        let Some(suite) = suite else {
            refuse(ctx, NotifyType::NO_PROPOSAL_CHOSEN, Vec::new());
            return None;
        };
        if suite.dh.id() != ke.group {
            refuse(
                ctx,
                NotifyType::INVALID_KE_PAYLOAD,
                suite.dh.id().to_be_bytes().to_vec(),
            );
            return None;
        }
        // 3. Our DH, nonce, SPI and the keys.
        let mut sa = IkeSa::blank(ctx, false, hdr.spi_i, local, from);
        sa.half_open_until = Some(at(ctx.now, cfg.half_open_timeout));
        sa.spi_r = random_u64(ctx.rng);
        sa.state = State::HalfOpen;
        sa.ke_group = suite.dh;
        let Ok(dh) = DhPrivateKey::generate(suite.dh, ctx.rng) else {
            refuse(ctx, NotifyType::NO_PROPOSAL_CHOSEN, Vec::new());
            return None;
        };
        let Ok(g_ir) = dh.shared_secret(&ke.data) else {
            refuse(ctx, NotifyType::INVALID_SYNTAX, Vec::new());
            return None;
        };
        let mut nr = vec![0u8; NONCE_LEN];
        ctx.rng.fill(&mut nr);
        sa.ni = ni.to_vec();
        sa.nr = nr;
        let keys = IkeKeys::initial(
            &suite.to_crypto(),
            &g_ir,
            &sa.ni,
            &sa.nr,
            &sa.spi_i.to_be_bytes(),
            &sa.spi_r.to_be_bytes(),
        )
        .ok()?;
        let (out, inb) = keys.ciphers(false).ok()?;
        sa.keys = Some(keys);
        sa.sk_out = Some(out);
        sa.sk_in = Some(inb);
        sa.suite = Some(suite);
        sa.peer_init = raw.to_vec();
        sa.nat = sa.detect_nat(ctx, 0, p, from, local);
        // 4. The response: SA, KE, Nr, NAT detection.
        let number = offered.get(choice.0).map_or(1, |(n, _)| *n);
        let mut payloads = vec![
            Payload::Sa(vec![suite.to_proposal().to_wire(number, Vec::new())]),
            Payload::Ke(KePayload {
                group: suite.dh.id(),
                data: dh.public_value(),
            }),
            Payload::Nonce(sa.nr.clone()),
        ];
        payloads.extend(sa.nat_notifies(ctx, sa.spi_r));
        sa.frag_ok = cfg.fragmentation
            && p.notify(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED)
                .is_some();
        if sa.frag_ok {
            payloads.push(notify(
                NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
                Vec::new(),
            ));
        }
        let resp = Message {
            header: sa.header(ExchangeType::IKE_SA_INIT, true, 0),
            payloads,
        };
        let bytes = resp.emit().ok()?;
        sa.own_init = bytes.clone();
        let t = sa.transmit(bytes);
        ctx.transmits.push_back(t.clone());
        sa.last_resp = Some((0, vec![t]));
        sa.peer_next_id = 1;
        sa.next_req_id = 0;
        Some(sa)
    }

    /// A retransmitted IKE_SA_INIT request for this (responder) SA: resend our answer.
    /// Returns false if the request is not a retransmission (different bytes) and the SA
    /// is still half-open: the caller then replaces it.
    pub(crate) fn handle_init_duplicate(&mut self, ctx: &mut Ctx<'_>, raw: &[u8]) -> bool {
        if raw != self.peer_init.as_slice() {
            if self.state == State::HalfOpen {
                self.state = State::Dead;
                return false;
            }
            return true;
        }
        if let Some((0, t)) = &self.last_resp {
            ctx.transmits.extend(t.iter().cloned());
            ctx.stats.resent_responses += 1;
        }
        true
    }
}
