//! IKE message fragmentation (RFC 7383): negotiated with IKEV2_FRAGMENTATION_SUPPORTED in
//! IKE_SA_INIT; protected messages longer than [`crate::Config::fragment_size`] allows are
//! sent as SKF fragments, each encrypted and authenticated on its own; received fragments
//! are verified one by one and reassembled ([`crate::wire::Reassembly`]).

use super::*;

impl IkeSa {
    /// The longest IKE datagram we send unfragmented (UDP payload, without the non-ESP
    /// marker), or `None` when fragmentation is not in use.
    pub(in crate::ike_sa) fn max_datagram(&self, ctx: &Ctx<'_>) -> Option<usize> {
        if !self.frag_ok {
            return None;
        }
        let ip = if self.remote.is_ipv4() { 20 } else { 40 };
        let marker = if self.remote.port() == NAT_T_PORT {
            4
        } else {
            0
        };
        // Never so small that no inner byte fits into a fragment.
        Some(
            ctx.config
                .fragment_size
                .saturating_sub(ip + 8 + marker)
                .max(wire::FRAGMENT_BODY_OFFSET + 128),
        )
    }

    /// The SKF fragments of a message whose inner payloads are `plain` (first type
    /// `first`), each at most `max` octets.
    pub(in crate::ike_sa) fn fragments(
        &self,
        ctx: &mut Ctx<'_>,
        out: &SkCipher,
        hdr: &HeaderRepr,
        first: PayloadType,
        plain: &[u8],
        max: usize,
    ) -> Result<Vec<Vec<u8>>, FailReason> {
        let err = |e: &dyn std::fmt::Display| FailReason::Protocol(e.to_string());
        // The largest chunk whose fragment fits (the padding makes body_len a step
        // function, so search downwards from the upper bound).
        let room = max.saturating_sub(wire::FRAGMENT_BODY_OFFSET);
        let mut chunk = room;
        while chunk > 0 && out.body_len(chunk) > room {
            chunk -= 1;
        }
        if chunk == 0 {
            return Err(FailReason::Protocol("fragment_size too small".into()));
        }
        let parts: Vec<&[u8]> = plain.chunks(chunk).collect();
        let total = u16::try_from(parts.len())
            .ok()
            .filter(|t| *t <= wire::Reassembly::MAX_FRAGMENTS)
            .ok_or_else(|| FailReason::Protocol("message too long to fragment".into()))?;
        let mut datagrams = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let number = i as u16 + 1;
            let next = if number == 1 {
                first
            } else {
                PayloadType::NONE
            };
            let body_len = out.body_len(part.len());
            let mut buf = Vec::with_capacity(wire::FRAGMENT_BODY_OFFSET + body_len);
            let off = wire::emit_fragment_prefix(&mut buf, hdr, next, number, total, body_len)
                .map_err(|e| err(&e))?;
            buf.resize(off + body_len, 0);
            let (aad, body) = buf.split_at_mut(off);
            out.encrypt(aad, part, ctx.rng, body).map_err(|e| err(&e))?;
            datagrams.push(buf);
        }
        Ok(datagrams)
    }

    /// A received SKF fragment (for a request with the expected message ID, or the
    /// response to our outstanding request): verified and decrypted on its own, then
    /// added to the reassembly. Returns true when the message is complete (it is then
    /// handled like an unfragmented one).
    pub(crate) fn add_fragment(&mut self, hdr: &HeaderRepr, msg: &Message, raw: &[u8]) -> R<bool> {
        if !self.frag_ok {
            return Err(Drop("fragment without negotiated fragmentation"));
        }
        let Some(Payload::EncryptedFragment(f)) = msg.payloads.last() else {
            return Err(Drop("no SKF payload"));
        };
        let (id, resp) = (hdr.message_id, hdr.flags.response);
        let expected = if resp {
            self.pending.as_ref().is_some_and(|p| p.msg_id == id)
        } else {
            id == self.peer_next_id
        };
        if !expected {
            return Err(Drop("fragment of an unexpected message"));
        }
        let inb = self.sk_in.as_ref().ok_or(Drop("no keys"))?;
        let off = raw
            .len()
            .checked_sub(f.body.len())
            .ok_or(Drop("SKF offset"))?;
        let aad = raw.get(..off).ok_or(Drop("SKF offset"))?;
        let plain = inb
            .decrypt(aad, &f.body)
            .map_err(|_| Drop("SKF integrity"))?;
        let slot = match &mut self.frag_in {
            Some((i, r, re)) if *i == id && *r == resp => re,
            other => {
                *other = Some((id, resp, wire::Reassembly::new()));
                match other {
                    Some((_, _, re)) => re,
                    None => return Err(Drop("reassembly")),
                }
            }
        };
        match slot.add(f.number, f.total, f.next_payload, &plain) {
            Ok(Some((first, whole))) => {
                self.frag_in = None;
                self.reassembled = Some((id, resp, first, whole));
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(_) => {
                self.frag_in = None;
                Err(Drop("bad fragment"))
            }
        }
    }
}
