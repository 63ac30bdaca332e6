//! SA proposals: strongSwan keyword strings, selection (RFC 7296 §2.7, §3.3.6) and the
//! default proposals Azure VPN Gateway offers.
//!
//! A proposal string is a `-`-separated list of algorithm keywords, as in strongSwan's
//! `proposals` / `esp_proposals`: `aes256-sha256-modp2048s256`, `aes256gcm16-prfsha384-ecp384`,
//! `aes256gcm16-modp2048s256` (ESP with a PFS group), `aes256-sha1-esn`. Several keywords
//! of the same kind make a proposal that offers each of them (`aes128-aes256-sha256-modp2048`).
//!
//! * IKE: an encryption algorithm is required, a DH group is required, a PRF is required
//!   (with CBC it defaults to the PRF of each integrity algorithm's hash, like strongSwan).
//!   AES-GCM must not be combined with an integrity algorithm.
//! * ESP: an encryption algorithm is required; CBC needs an integrity algorithm; a DH group
//!   means PFS (used in CREATE_CHILD_SA only: the first Child SA, created in IKE_AUTH,
//!   never carries DH transforms, RFC 7296 §1.2); ESN defaults to `noesn`.

use core::fmt;

pub use crate::crypto::{DhGroup, Integ, Prf};

/// Encryption algorithm (IKEv2 Transform Type 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encr {
    /// AES-CBC (ENCR_AES_CBC = 12) with a key of `key_bits` bits.
    AesCbc {
        /// 128, 192 or 256.
        key_bits: u16,
    },
    /// AES-GCM with a 16-byte ICV (ENCR_AES_GCM_16 = 20), key of `key_bits` bits.
    AesGcm16 {
        /// 128, 192 or 256.
        key_bits: u16,
    },
}

impl Encr {
    /// IANA transform ID.
    pub const fn transform_id(self) -> u16 {
        match self {
            Encr::AesCbc { .. } => 12,
            Encr::AesGcm16 { .. } => 20,
        }
    }
    /// Key length attribute, in bits.
    pub const fn key_bits(self) -> u16 {
        match self {
            Encr::AesCbc { key_bits } | Encr::AesGcm16 { key_bits } => key_bits,
        }
    }
    /// Whether this is an AEAD (combined-mode) cipher.
    pub const fn is_aead(self) -> bool {
        matches!(self, Encr::AesGcm16 { .. })
    }
    /// From the transform ID and key length attribute; `None` if not supported.
    pub const fn from_wire(id: u16, key_bits: Option<u16>) -> Option<Self> {
        let key_bits = match key_bits {
            Some(b @ (128 | 192 | 256)) => b,
            _ => return None,
        };
        match id {
            12 => Some(Encr::AesCbc { key_bits }),
            20 => Some(Encr::AesGcm16 { key_bits }),
            _ => None,
        }
    }
    /// Key material length in bytes for IKE/ESP keying (GCM adds a 4-byte salt, RFC 4106 §8.1).
    pub const fn keymat_len(self) -> usize {
        match self {
            Encr::AesCbc { key_bits } => key_bits as usize / 8,
            Encr::AesGcm16 { key_bits } => key_bits as usize / 8 + 4,
        }
    }
}

/// Extended Sequence Numbers (Transform Type 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Esn {
    /// 32-bit sequence numbers (ID 0), `noesn`.
    No,
    /// 64-bit extended sequence numbers (ID 1), `esn`.
    Yes,
}

impl Esn {
    /// IANA transform ID.
    pub const fn transform_id(self) -> u16 {
        match self {
            Esn::No => 0,
            Esn::Yes => 1,
        }
    }
    /// From the IANA transform ID.
    pub const fn from_transform_id(id: u16) -> Option<Self> {
        match id {
            0 => Some(Esn::No),
            1 => Some(Esn::Yes),
            _ => None,
        }
    }
}

/// The PRF over the same hash as an integrity algorithm (strongSwan's default PRF for a
/// CBC proposal without an explicit `prf...` keyword).
pub const fn default_prf(i: Integ) -> Prf {
    match i {
        Integ::HmacSha1_96 => Prf::HmacSha1,
        Integ::HmacSha256_128 => Prf::HmacSha256,
        Integ::HmacSha384_192 => Prf::HmacSha384,
        Integ::HmacSha512_256 => Prf::HmacSha512,
    }
}

/// Protocol a proposal is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// IKE SA (Protocol ID 1).
    Ike,
    /// ESP Child SA (Protocol ID 3).
    Esp,
}

/// One proposal: for each transform type, the algorithms offered (in preference order).
///
/// An IKE proposal has at least one `encr`, `prf` and `dh`; an ESP proposal at least one
/// `encr` and `esn`. `integ` is empty for AEAD proposals.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Proposal {
    /// IKE or ESP.
    pub protocol: Protocol,
    /// Encryption algorithms.
    pub encr: Vec<Encr>,
    /// Integrity algorithms (empty with AEAD).
    pub integ: Vec<Integ>,
    /// PRFs (IKE only).
    pub prf: Vec<Prf>,
    /// DH groups (for ESP: PFS groups; empty means no PFS).
    pub dh: Vec<DhGroup>,
    /// ESN choices (ESP only).
    pub esn: Vec<Esn>,
}

/// Why a proposal string was refused. The message names the offending keyword.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    /// The proposal string is empty.
    #[error("empty proposal")]
    Empty,
    /// A keyword is not an algorithm Causeway supports (for this protocol).
    #[error("unknown algorithm keyword `{keyword}` in {protocol} proposal `{proposal}`")]
    UnknownKeyword {
        /// The keyword.
        keyword: String,
        /// `IKE` or `ESP`.
        protocol: &'static str,
        /// The whole proposal string.
        proposal: String,
    },
    /// The proposal lacks a required kind of algorithm.
    #[error("{protocol} proposal `{proposal}` has no {what}")]
    Missing {
        /// What is missing (`encryption algorithm`, `DH group`, ...).
        what: &'static str,
        /// `IKE` or `ESP`.
        protocol: &'static str,
        /// The whole proposal string.
        proposal: String,
    },
    /// AES-GCM mixed with an integrity algorithm or with CBC.
    #[error("{protocol} proposal `{proposal}` mixes AEAD (GCM) and non-AEAD algorithms")]
    MixedAead {
        /// `IKE` or `ESP`.
        protocol: &'static str,
        /// The whole proposal string.
        proposal: String,
    },
}

fn parse_encr(k: &str) -> Option<Encr> {
    let cbc = |key_bits| Some(Encr::AesCbc { key_bits });
    let gcm = |key_bits| Some(Encr::AesGcm16 { key_bits });
    match k {
        "aes" | "aes128" => cbc(128),
        "aes192" => cbc(192),
        "aes256" => cbc(256),
        "aes128gcm16" | "aes128gcm128" | "aes128gcm" => gcm(128),
        "aes192gcm16" | "aes192gcm128" | "aes192gcm" => gcm(192),
        "aes256gcm16" | "aes256gcm128" | "aes256gcm" => gcm(256),
        _ => None,
    }
}

fn parse_integ(k: &str) -> Option<Integ> {
    match k {
        "sha1" | "sha" => Some(Integ::HmacSha1_96),
        "sha256" | "sha2_256" => Some(Integ::HmacSha256_128),
        "sha384" | "sha2_384" => Some(Integ::HmacSha384_192),
        "sha512" | "sha2_512" => Some(Integ::HmacSha512_256),
        _ => None,
    }
}

fn parse_prf(k: &str) -> Option<Prf> {
    match k {
        "prfsha1" => Some(Prf::HmacSha1),
        "prfsha256" => Some(Prf::HmacSha256),
        "prfsha384" => Some(Prf::HmacSha384),
        "prfsha512" => Some(Prf::HmacSha512),
        _ => None,
    }
}

fn parse_dh(k: &str) -> Option<DhGroup> {
    match k {
        "modp1024" => Some(DhGroup::Modp1024),
        "modp2048" => Some(DhGroup::Modp2048),
        "modp3072" => Some(DhGroup::Modp3072),
        "modp2048s256" => Some(DhGroup::Modp2048s256),
        "ecp256" => Some(DhGroup::Ecp256),
        "ecp384" => Some(DhGroup::Ecp384),
        "x25519" | "curve25519" => Some(DhGroup::Curve25519),
        _ => None,
    }
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

fn parse(s: &str, protocol: Protocol) -> Result<Proposal, ProposalError> {
    let pname = match protocol {
        Protocol::Ike => "IKE",
        Protocol::Esp => "ESP",
    };
    let s = s.trim();
    if s.is_empty() {
        return Err(ProposalError::Empty);
    }
    let mut p = Proposal {
        protocol,
        encr: Vec::new(),
        integ: Vec::new(),
        prf: Vec::new(),
        dh: Vec::new(),
        esn: Vec::new(),
    };
    for raw in s.split('-') {
        let k = raw.trim().to_ascii_lowercase();
        if let Some(e) = parse_encr(&k) {
            push_unique(&mut p.encr, e);
        } else if let Some(i) = parse_integ(&k) {
            push_unique(&mut p.integ, i);
        } else if let (Protocol::Ike, Some(f)) = (protocol, parse_prf(&k)) {
            push_unique(&mut p.prf, f);
        } else if let Some(g) = parse_dh(&k) {
            push_unique(&mut p.dh, g);
        } else if let (Protocol::Esp, "esn") = (protocol, k.as_str()) {
            push_unique(&mut p.esn, Esn::Yes);
        } else if let (Protocol::Esp, "noesn") = (protocol, k.as_str()) {
            push_unique(&mut p.esn, Esn::No);
        } else {
            return Err(ProposalError::UnknownKeyword {
                keyword: raw.trim().to_string(),
                protocol: pname,
                proposal: s.to_string(),
            });
        }
    }
    let missing = |what| ProposalError::Missing {
        what,
        protocol: pname,
        proposal: s.to_string(),
    };
    if p.encr.is_empty() {
        return Err(missing("encryption algorithm"));
    }
    let aead = p.encr.iter().filter(|e| e.is_aead()).count();
    if aead != 0 && (aead != p.encr.len() || !p.integ.is_empty()) {
        return Err(ProposalError::MixedAead {
            protocol: pname,
            proposal: s.to_string(),
        });
    }
    if aead == 0 && p.integ.is_empty() {
        return Err(missing("integrity algorithm"));
    }
    match protocol {
        Protocol::Ike => {
            if p.prf.is_empty() {
                if aead != 0 {
                    return Err(missing("PRF (e.g. prfsha256)"));
                }
                let defaults: Vec<Prf> = p.integ.iter().map(|i| default_prf(*i)).collect();
                for f in defaults {
                    push_unique(&mut p.prf, f);
                }
            }
            if p.dh.is_empty() {
                return Err(missing("DH group"));
            }
        }
        Protocol::Esp => {
            if p.esn.is_empty() {
                p.esn.push(Esn::No);
            }
        }
    }
    Ok(p)
}

/// Parses a strongSwan IKE proposal string such as `aes256-sha256-modp2048s256` or
/// `aes256gcm16-prfsha384-ecp384`.
pub fn parse_ike_proposal(s: &str) -> Result<Proposal, ProposalError> {
    parse(s, Protocol::Ike)
}

/// Parses a strongSwan ESP proposal string such as `aes256gcm16`, `aes256-sha1`,
/// `aes256gcm16-modp2048s256` (PFS) or `aes128-sha256-esn`.
pub fn parse_esp_proposal(s: &str) -> Result<Proposal, ProposalError> {
    parse(s, Protocol::Esp)
}

impl Proposal {
    /// The same proposal without DH transforms (for the Child SA created in IKE_AUTH).
    pub fn without_dh(&self) -> Proposal {
        Proposal {
            dh: Vec::new(),
            ..self.clone()
        }
    }
}

fn kw_encr(e: Encr) -> String {
    match e {
        Encr::AesCbc { key_bits } => format!("aes{key_bits}"),
        Encr::AesGcm16 { key_bits } => format!("aes{key_bits}gcm16"),
    }
}

fn kw_integ(i: Integ) -> &'static str {
    match i {
        Integ::HmacSha1_96 => "sha1",
        Integ::HmacSha256_128 => "sha256",
        Integ::HmacSha384_192 => "sha384",
        Integ::HmacSha512_256 => "sha512",
    }
}

fn kw_prf(p: Prf) -> &'static str {
    match p {
        Prf::HmacSha1 => "prfsha1",
        Prf::HmacSha256 => "prfsha256",
        Prf::HmacSha384 => "prfsha384",
        Prf::HmacSha512 => "prfsha512",
    }
}

impl fmt::Display for Proposal {
    /// strongSwan keyword form (round-trips through the parsers).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self.encr.iter().map(|e| kw_encr(*e)).collect();
        parts.extend(self.integ.iter().map(|i| kw_integ(*i).to_string()));
        parts.extend(self.prf.iter().map(|p| kw_prf(*p).to_string()));
        parts.extend(self.dh.iter().map(|g| g.name().to_string()));
        if self.protocol == Protocol::Esp && self.esn != [Esn::No] {
            parts.extend(self.esn.iter().map(|e| match e {
                Esn::No => "noesn".to_string(),
                Esn::Yes => "esn".to_string(),
            }));
        }
        f.write_str(&parts.join("-"))
    }
}

/// The negotiated algorithms of an IKE SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IkeSuite {
    /// Encryption.
    pub encr: Encr,
    /// Integrity (`None` with AEAD).
    pub integ: Option<Integ>,
    /// PRF.
    pub prf: Prf,
    /// DH group.
    pub dh: DhGroup,
}

/// The negotiated algorithms of an ESP Child SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChildSuite {
    /// Encryption.
    pub encr: Encr,
    /// Integrity (`None` with AEAD).
    pub integ: Option<Integ>,
    /// PFS group (used on rekey; the first Child SA never uses one).
    pub dh: Option<DhGroup>,
    /// Extended sequence numbers.
    pub esn: bool,
}

impl IkeSuite {
    /// As a single-transform proposal (what a responder sends back).
    pub fn to_proposal(self) -> Proposal {
        Proposal {
            protocol: Protocol::Ike,
            encr: vec![self.encr],
            integ: self.integ.into_iter().collect(),
            prf: vec![self.prf],
            dh: vec![self.dh],
            esn: Vec::new(),
        }
    }
}

impl ChildSuite {
    /// As a single-transform proposal (what a responder sends back).
    pub fn to_proposal(self) -> Proposal {
        Proposal {
            protocol: Protocol::Esp,
            encr: vec![self.encr],
            integ: self.integ.into_iter().collect(),
            prf: Vec::new(),
            dh: self.dh.into_iter().collect(),
            esn: vec![if self.esn { Esn::Yes } else { Esn::No }],
        }
    }

    /// The ESP suite for the dataplane (`esp` crate).
    pub fn esp_suite(self) -> Option<esp::suite::Suite> {
        use esp::suite::{Encryption, Integrity, Suite};
        let enc = match self.encr {
            Encr::AesCbc { key_bits } => Encryption::AesCbc { key_bits },
            Encr::AesGcm16 { key_bits } => Encryption::AesGcm16 { key_bits },
        };
        let integ = self.integ.map(|i| Integrity::from_transform_id(i.id()));
        let integ = match integ {
            None => None,
            Some(Some(i)) => Some(i),
            Some(None) => return None,
        };
        Suite::new(enc, integ).ok()
    }

    /// Total KEYMAT length for one direction (encryption key, salt, integrity key).
    pub fn keymat_len(self) -> usize {
        self.encr.keymat_len() + self.integ.map_or(0, |i| i.key_len())
    }
}

/// First element of `theirs` (their preference order) that is also in `ours`.
fn pick<T: Copy + PartialEq>(theirs: &[T], ours: &[T]) -> Option<T> {
    theirs.iter().copied().find(|t| ours.contains(t))
}

/// Intersects one offered proposal with one configured proposal, transform type by
/// transform type, taking the offerer's preferred algorithm of each type.
fn match_one(offered: &Proposal, ours: &Proposal) -> Option<Proposal> {
    if offered.protocol != ours.protocol {
        return None;
    }
    let encr = pick(&offered.encr, &ours.encr)?;
    let integ = if encr.is_aead() {
        // RFC 5282 §8: an AEAD proposal has no integrity transform (or NONE).
        None
    } else {
        Some(pick(&offered.integ, &ours.integ)?)
    };
    let mut out = Proposal {
        protocol: ours.protocol,
        encr: vec![encr],
        integ: integ.into_iter().collect(),
        prf: Vec::new(),
        dh: Vec::new(),
        esn: Vec::new(),
    };
    match ours.protocol {
        Protocol::Ike => {
            out.prf = vec![pick(&offered.prf, &ours.prf)?];
            out.dh = vec![pick(&offered.dh, &ours.dh)?];
        }
        Protocol::Esp => {
            // Both without PFS, or a common group.
            match (offered.dh.is_empty(), ours.dh.is_empty()) {
                (true, true) => {}
                (false, false) => out.dh = vec![pick(&offered.dh, &ours.dh)?],
                _ => return None,
            }
            let offered_esn: &[Esn] = if offered.esn.is_empty() {
                &[Esn::No]
            } else {
                &offered.esn
            };
            out.esn = vec![pick(offered_esn, &ours.esn)?];
        }
    }
    Some(out)
}

/// Responder-side selection (RFC 7296 §2.7): the first offered proposal (in the
/// initiator's order) that matches one of `ours`, with, for each transform type, the
/// initiator's most preferred algorithm that `ours` allows. Returns the index of the
/// offered proposal and the single-transform proposal to send back.
pub fn select(offered: &[Proposal], ours: &[Proposal]) -> Option<(usize, Proposal)> {
    offered.iter().enumerate().find_map(|(i, o)| {
        ours.iter()
            .find_map(|c| match_one(o, c))
            .map(|chosen| (i, chosen))
    })
}

/// Like [`select`] for the IKE SA, returning the suite.
pub fn select_ike(offered: &[Proposal], ours: &[Proposal]) -> Option<(usize, IkeSuite)> {
    let (i, p) = select(offered, ours)?;
    p.ike_suite().map(|s| (i, s))
}

impl Proposal {
    /// If this proposal has exactly one algorithm per transform type (as a responder's
    /// answer must), the IKE suite it names.
    pub fn ike_suite(&self) -> Option<IkeSuite> {
        if self.protocol != Protocol::Ike || self.prf.len() != 1 || self.dh.len() != 1 {
            return None;
        }
        let (encr, integ) = self.single_cipher()?;
        Some(IkeSuite {
            encr,
            integ,
            prf: self.prf[0],
            dh: self.dh[0],
        })
    }

    /// If this proposal has exactly one algorithm per transform type, the Child SA suite.
    pub fn child_suite(&self) -> Option<ChildSuite> {
        if self.protocol != Protocol::Esp || self.dh.len() > 1 || self.esn.len() > 1 {
            return None;
        }
        let (encr, integ) = self.single_cipher()?;
        Some(ChildSuite {
            encr,
            integ,
            dh: self.dh.first().copied(),
            esn: self.esn.first() == Some(&Esn::Yes),
        })
    }

    /// The one encryption algorithm and its integrity algorithm, if this proposal has
    /// exactly that: an AEAD cipher comes without one, any other cipher with exactly one.
    fn single_cipher(&self) -> Option<(Encr, Option<Integ>)> {
        if self.encr.len() != 1 || self.integ.len() > 1 {
            return None;
        }
        let encr = self.encr[0];
        let integ = self.integ.first().copied();
        (encr.is_aead() == integ.is_none()).then_some((encr, integ))
    }

    /// Whether a responder's single-transform answer `chosen` is allowed by this
    /// (offered) proposal: every chosen algorithm was offered.
    pub fn allows(&self, chosen: &Proposal) -> bool {
        self.protocol == chosen.protocol
            && chosen.encr.iter().all(|x| self.encr.contains(x))
            && chosen.integ.iter().all(|x| self.integ.contains(x))
            && chosen.prf.iter().all(|x| self.prf.contains(x))
            && chosen.dh.iter().all(|x| self.dh.contains(x))
            && chosen
                .esn
                .iter()
                .all(|x| self.esn.contains(x) || (self.esn.is_empty() && *x == Esn::No))
    }
}

/// Azure VPN Gateway's default IKE offers, in its order (Azure as initiator; a Causeway
/// responder configured with these accepts what Azure proposes).
pub const AZURE_IKE_DEFAULTS: &[&str] = &[
    "aes256-sha1-modp1024",
    "aes256-sha256-modp1024",
    "aes128-sha1-modp1024",
    "aes128-sha256-modp1024",
    "aes256-sha256-modp2048",
    "aes256-sha1-modp2048",
    "aes128-sha256-modp2048",
    "aes128-sha1-modp2048",
];

/// Azure VPN Gateway's default Child SA offer: GCM-AES256 without PFS, no ESN.
pub const AZURE_ESP_DEFAULTS: &[&str] = &["aes256gcm16"];

/// Parses a list of proposal strings (e.g. [`AZURE_IKE_DEFAULTS`]).
pub fn parse_ike_proposals(list: &[&str]) -> Result<Vec<Proposal>, ProposalError> {
    list.iter().map(|s| parse_ike_proposal(s)).collect()
}

/// Parses a list of ESP proposal strings (e.g. [`AZURE_ESP_DEFAULTS`]).
pub fn parse_esp_proposals(list: &[&str]) -> Result<Vec<Proposal>, ProposalError> {
    list.iter().map(|s| parse_esp_proposal(s)).collect()
}

// ===== conversion to/from the wire SA payload =====

use crate::wire;

impl Proposal {
    /// The wire proposal substructure with proposal number `number` and `spi` (empty for
    /// IKE_SA_INIT, 4 octets for ESP).
    pub fn to_wire(&self, number: u8, spi: Vec<u8>) -> wire::Proposal {
        use wire::{Transform, TransformType};
        let mut t = Vec::new();
        for e in &self.encr {
            t.push(
                Transform::new(TransformType::ENCR, e.transform_id()).with_key_length(e.key_bits()),
            );
        }
        for p in &self.prf {
            t.push(Transform::new(TransformType::PRF, p.id()));
        }
        for i in &self.integ {
            t.push(Transform::new(TransformType::INTEG, i.id()));
        }
        for g in &self.dh {
            t.push(Transform::new(TransformType::DH, g.id()));
        }
        if self.protocol == Protocol::Esp {
            let esn: &[Esn] = if self.esn.is_empty() {
                &[Esn::No]
            } else {
                &self.esn
            };
            for e in esn {
                t.push(Transform::new(TransformType::ESN, e.transform_id()));
            }
        }
        wire::Proposal {
            number,
            protocol: match self.protocol {
                Protocol::Ike => wire::ProtocolId::IKE,
                Protocol::Esp => wire::ProtocolId::ESP,
            },
            spi,
            transforms: t,
        }
    }

    /// The supported part of a received proposal: transforms Causeway does not implement
    /// are dropped (so they never match). `None` if the protocol is not IKE/ESP or a
    /// required transform type is left empty.
    pub fn from_wire(p: &wire::Proposal) -> Option<Proposal> {
        use wire::TransformType;
        let protocol = match p.protocol {
            wire::ProtocolId::IKE => Protocol::Ike,
            wire::ProtocolId::ESP => Protocol::Esp,
            _ => return None,
        };
        let mut out = Proposal {
            protocol,
            encr: Vec::new(),
            integ: Vec::new(),
            prf: Vec::new(),
            dh: Vec::new(),
            esn: Vec::new(),
        };
        let mut saw_integ = false;
        let mut saw_esn = false;
        for t in &p.transforms {
            match t.transform_type {
                TransformType::ENCR => {
                    if let Some(e) = Encr::from_wire(t.id, t.key_length()) {
                        push_unique(&mut out.encr, e);
                    }
                }
                TransformType::PRF => {
                    if let Some(x) = Prf::from_id(t.id) {
                        push_unique(&mut out.prf, x);
                    }
                }
                TransformType::INTEG => {
                    // NONE (0) is allowed with AEAD: it leaves the list empty.
                    if t.id != 0 {
                        saw_integ = true;
                    }
                    if let Some(x) = Integ::from_id(t.id) {
                        push_unique(&mut out.integ, x);
                    }
                }
                TransformType::DH => {
                    // NONE (0) in an ESP proposal means "no PFS" (an empty list).
                    if let Some(x) = DhGroup::from_id(t.id) {
                        push_unique(&mut out.dh, x);
                    } else if t.id != 0 {
                        // An unsupported group: keep the proposal marked as "has PFS"
                        // only through the supported ones.
                    }
                }
                TransformType::ESN => {
                    saw_esn = true;
                    if let Some(x) = Esn::from_transform_id(t.id) {
                        push_unique(&mut out.esn, x);
                    }
                }
                _ => {}
            }
        }
        if out.encr.is_empty() {
            return None;
        }
        let aead = out.encr[0].is_aead();
        if out.encr.iter().any(|e| e.is_aead() != aead) {
            // Mixed AEAD/non-AEAD: keep only the first kind.
            out.encr.retain(|e| e.is_aead() == aead);
        }
        if aead {
            out.integ.clear();
        } else if out.integ.is_empty() {
            let _ = saw_integ;
            return None;
        }
        match protocol {
            Protocol::Ike => {
                if out.prf.is_empty() || out.dh.is_empty() {
                    return None;
                }
            }
            Protocol::Esp => {
                if out.esn.is_empty() {
                    if saw_esn {
                        return None;
                    }
                    out.esn.push(Esn::No);
                }
            }
        }
        Some(out)
    }
}

/// Builds an SA payload body from configured proposals (numbered from 1), each with `spi`.
pub fn to_wire_sa(proposals: &[Proposal], spi: &[u8]) -> Vec<wire::Proposal> {
    proposals
        .iter()
        .enumerate()
        .map(|(i, p)| p.to_wire((i + 1).min(255) as u8, spi.to_vec()))
        .collect()
}

// ===== adapters to the crypto module's suite types =====

impl Encr {
    /// The crypto module's algorithm (without the key length).
    pub const fn to_crypto(self) -> crate::crypto::Encr {
        match self {
            Encr::AesCbc { .. } => crate::crypto::Encr::AesCbc,
            Encr::AesGcm16 { .. } => crate::crypto::Encr::AesGcm16,
        }
    }
}

impl IkeSuite {
    /// The crypto module's suite (for the key schedule and the SK payload).
    pub fn to_crypto(self) -> crate::crypto::IkeSuite {
        crate::crypto::IkeSuite {
            encr: self.encr.to_crypto(),
            key_bits: self.encr.key_bits(),
            integ: self.integ,
            prf: self.prf,
            dh: self.dh,
        }
    }
}

impl ChildSuite {
    /// The crypto module's suite (for KEYMAT).
    pub fn to_crypto(self) -> crate::crypto::ChildSuite {
        crate::crypto::ChildSuite {
            encr: self.encr.to_crypto(),
            key_bits: self.encr.key_bits(),
            integ: self.integ,
            dh: self.dh,
        }
    }
}

impl fmt::Display for IkeSuite {
    /// strongSwan keyword form, e.g. `aes256-sha256-prfsha256-modp2048`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_proposal().fmt(f)
    }
}

impl fmt::Display for ChildSuite {
    /// strongSwan keyword form, e.g. `aes256gcm16` or `aes256-sha1-esn`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_proposal().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_azure_matrix() {
        let p = parse_ike_proposal("aes256-sha1-modp1024").unwrap();
        assert_eq!(p.encr, vec![Encr::AesCbc { key_bits: 256 }]);
        assert_eq!(p.integ, vec![Integ::HmacSha1_96]);
        assert_eq!(p.prf, vec![Prf::HmacSha1]);
        assert_eq!(p.dh, vec![DhGroup::Modp1024]);
        let p = parse_ike_proposal("aes256gcm16-prfsha384-ecp384").unwrap();
        assert_eq!(p.encr, vec![Encr::AesGcm16 { key_bits: 256 }]);
        assert!(p.integ.is_empty());
        assert_eq!(p.prf, vec![Prf::HmacSha384]);
        assert_eq!(p.dh, vec![DhGroup::Ecp384]);
        let p = parse_ike_proposal("aes256-sha256-x25519").unwrap();
        assert_eq!(p.dh, vec![DhGroup::Curve25519]);
        assert_eq!(
            parse_ike_proposal("aes256-sha256-curve25519").unwrap(),
            parse_ike_proposal("aes256-sha256-x25519").unwrap()
        );
        let p = parse_ike_proposal("aes128-aes256-sha256-sha1-modp2048s256-ecp256").unwrap();
        assert_eq!(p.encr.len(), 2);
        assert_eq!(p.prf, vec![Prf::HmacSha256, Prf::HmacSha1]);
        assert_eq!(p.dh, vec![DhGroup::Modp2048s256, DhGroup::Ecp256]);
        for s in AZURE_IKE_DEFAULTS {
            parse_ike_proposal(s).unwrap();
        }
    }

    #[test]
    fn parses_esp() {
        let p = parse_esp_proposal("aes256gcm16").unwrap();
        assert_eq!(
            p.child_suite().unwrap().esp_suite(),
            Some(esp::suite::Suite::AES256_GCM16)
        );
        assert_eq!(p.esn, vec![Esn::No]);
        let p = parse_esp_proposal("aes256gcm16-modp2048s256").unwrap();
        assert_eq!(p.dh, vec![DhGroup::Modp2048s256]);
        let p = parse_esp_proposal("aes128-sha1-esn-noesn").unwrap();
        assert_eq!(p.esn, vec![Esn::Yes, Esn::No]);
        assert_eq!(
            parse_esp_proposal("aes256gcm128").unwrap(),
            parse_esp_proposal("aes256gcm16").unwrap()
        );
        let s = parse_esp_proposal("aes256-sha256")
            .unwrap()
            .child_suite()
            .unwrap();
        assert_eq!(s.keymat_len(), 32 + 32);
        assert!(s.esp_suite().is_some());
    }

    #[test]
    fn errors_name_the_keyword() {
        let e = parse_ike_proposal("aes256-sha265-modp2048").unwrap_err();
        assert!(e.to_string().contains("`sha265`"), "{e}");
        let e = parse_esp_proposal("aes256gcm16-prfsha256").unwrap_err();
        assert!(e.to_string().contains("`prfsha256`"), "{e}");
        assert!(matches!(
            parse_ike_proposal("aes256-sha256"),
            Err(ProposalError::Missing { .. })
        ));
        assert!(matches!(
            parse_ike_proposal("aes256gcm16-ecp384"),
            Err(ProposalError::Missing { .. })
        ));
        assert!(matches!(
            parse_ike_proposal("aes256gcm16-sha256-prfsha256-ecp384"),
            Err(ProposalError::MixedAead { .. })
        ));
        assert!(matches!(
            parse_esp_proposal("aes256"),
            Err(ProposalError::Missing { .. })
        ));
        assert_eq!(parse_esp_proposal(""), Err(ProposalError::Empty));
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "aes256-sha1-modp1024",
            "aes256gcm16-prfsha384-ecp384",
            "aes128-aes256-sha256-prfsha256-modp2048s256",
        ] {
            let p = parse_ike_proposal(s).unwrap();
            assert_eq!(parse_ike_proposal(&p.to_string()).unwrap(), p);
        }
        for s in ["aes256gcm16", "aes256-sha1-esn", "aes256gcm16-modp2048s256"] {
            let p = parse_esp_proposal(s).unwrap();
            assert_eq!(parse_esp_proposal(&p.to_string()).unwrap(), p);
        }
    }

    #[test]
    fn selection_takes_initiator_order() {
        let offered =
            parse_ike_proposals(&["aes128-sha1-modp2048", "aes256-sha256-sha1-ecp256-modp2048"])
                .unwrap();
        let ours = parse_ike_proposals(&["aes256-sha1-sha256-modp2048"]).unwrap();
        let (i, s) = select_ike(&offered, &ours).unwrap();
        assert_eq!(i, 1);
        assert_eq!(s.encr, Encr::AesCbc { key_bits: 256 });
        assert_eq!(s.integ, Some(Integ::HmacSha256_128));
        assert_eq!(s.prf, Prf::HmacSha256);
        assert_eq!(s.dh, DhGroup::Modp2048);
        assert!(offered[1].allows(&s.to_proposal()));
        assert!(!offered[0].allows(&s.to_proposal()));
        let none = parse_ike_proposals(&["aes256gcm16-prfsha384-ecp384"]).unwrap();
        assert!(select(&offered, &none).is_none());
    }

    #[test]
    fn esp_selection_pfs_and_esn() {
        let nopfs = parse_esp_proposals(&["aes256gcm16"]).unwrap();
        let pfs = parse_esp_proposals(&["aes256gcm16-modp2048s256"]).unwrap();
        assert!(select(&pfs, &nopfs).is_none());
        assert!(select(&pfs, &pfs).is_some());
        let pfs_stripped: Vec<_> = pfs.iter().map(|p| p.without_dh()).collect();
        let (_, c) = select(&pfs_stripped, &nopfs).unwrap();
        assert_eq!(
            c.child_suite().unwrap().esp_suite(),
            Some(esp::suite::Suite::AES256_GCM16)
        );
        let esn = parse_esp_proposals(&["aes256-sha256-esn"]).unwrap();
        let noesn = parse_esp_proposals(&["aes256-sha256"]).unwrap();
        assert!(select(&esn, &noesn).is_none());
    }

    #[test]
    fn wire_round_trip_and_unknown_transforms() {
        use crate::wire::{Transform, TransformType};
        for (p, spi) in [
            (
                parse_ike_proposal("aes128-aes256-sha256-sha1-modp2048-ecp256").unwrap(),
                vec![],
            ),
            (
                parse_esp_proposal("aes256gcm16-modp2048s256-esn-noesn").unwrap(),
                vec![1, 2, 3, 4],
            ),
        ] {
            let w = p.to_wire(3, spi.clone());
            assert_eq!((w.number, w.spi.clone()), (3, spi));
            assert_eq!(Proposal::from_wire(&w), Some(p));
        }
        // A peer offering 3DES, AES-XCBC, MODP-1536 and an explicit INTEG NONE with GCM:
        // the unknown ones are dropped, the rest still matches.
        let mut w = parse_ike_proposal("aes256gcm16-prfsha256-ecp256")
            .unwrap()
            .to_wire(1, vec![]);
        w.transforms.push(Transform::new(TransformType::ENCR, 3));
        w.transforms.push(Transform::new(TransformType::PRF, 4));
        w.transforms.push(Transform::new(TransformType::INTEG, 0));
        w.transforms.push(Transform::new(TransformType::DH, 5));
        let got = Proposal::from_wire(&w).unwrap();
        assert_eq!(
            got,
            parse_ike_proposal("aes256gcm16-prfsha256-ecp256").unwrap()
        );
        // Only unsupported algorithms: nothing to match.
        let mut w = parse_ike_proposal("aes256-sha256-ecp256")
            .unwrap()
            .to_wire(1, vec![]);
        w.transforms
            .retain(|t| t.transform_type != TransformType::DH);
        w.transforms.push(Transform::new(TransformType::DH, 5));
        assert_eq!(Proposal::from_wire(&w), None);
        // AES without a key length attribute is not accepted (RFC 7296 §3.3.5).
        let mut w = parse_esp_proposal("aes256gcm16")
            .unwrap()
            .to_wire(1, vec![0; 4]);
        w.transforms[0].attributes.clear();
        assert_eq!(Proposal::from_wire(&w), None);
    }
}
