//! NOTIFICATION (RFC 4271 §4.5, shutdown communication RFC 9003) and ROUTE-REFRESH
//! (RFC 2918, RFC 7313).

use super::{code, error_name, NotifyError, Reader};

/// A NOTIFICATION message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotificationRepr {
    /// Error code.
    pub code: u8,
    /// Error subcode.
    pub subcode: u8,
    /// Data.
    pub data: Vec<u8>,
}

impl NotificationRepr {
    /// Cease with a shutdown communication (RFC 9003): `subcode` is
    /// [`code::CEASE_ADMIN_SHUTDOWN`] or [`code::CEASE_ADMIN_RESET`]; the message is cut to
    /// 255 bytes at a character boundary.
    pub fn shutdown(subcode: u8, message: &str) -> NotificationRepr {
        let mut end = message.len().min(255);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let msg = &message.as_bytes()[..end];
        let mut data = vec![msg.len() as u8];
        data.extend_from_slice(msg);
        NotificationRepr {
            code: code::CEASE,
            subcode,
            data,
        }
    }

    /// The RFC 9003 shutdown communication, if this is an administrative shutdown/reset
    /// carrying valid UTF-8 text.
    pub fn shutdown_message(&self) -> Option<String> {
        if self.code != code::CEASE
            || !matches!(
                self.subcode,
                code::CEASE_ADMIN_SHUTDOWN | code::CEASE_ADMIN_RESET
            )
        {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let text = rest.get(..usize::from(len))?;
        std::str::from_utf8(text).ok().map(str::to_owned)
    }

    /// A one-line description, e.g. "cease: administrative shutdown: \"maintenance\"".
    pub fn describe(&self) -> String {
        let name = error_name(self.code, self.subcode);
        match self.shutdown_message() {
            Some(m) if !m.is_empty() => format!("{name}: {m:?}"),
            _ => format!("{name} ({}/{})", self.code, self.subcode),
        }
    }

    /// Parses the body. Any body is a valid NOTIFICATION (the caller checked length ≥ 2).
    pub fn parse(body: &[u8]) -> NotificationRepr {
        NotificationRepr {
            code: body.first().copied().unwrap_or(0),
            subcode: body.get(1).copied().unwrap_or(0),
            data: body.get(2..).unwrap_or(&[]).to_vec(),
        }
    }

    /// Appends the body to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.code);
        out.push(self.subcode);
        out.extend_from_slice(&self.data);
    }
}

/// A ROUTE-REFRESH message. `subtype` is 0 (request), 1 (BoRR) or 2 (EoRR) per RFC 7313.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteRefreshRepr {
    /// AFI.
    pub afi: u16,
    /// Message subtype (RFC 7313; the former reserved byte).
    pub subtype: u8,
    /// SAFI.
    pub safi: u8,
}

impl RouteRefreshRepr {
    /// Parses the body; a length other than 4 is a ROUTE-REFRESH error (RFC 7313 §5).
    pub fn parse(body: &[u8]) -> Result<RouteRefreshRepr, NotifyError> {
        let mut r = Reader::new(body);
        match (r.u16(), r.u8(), r.u8(), r.is_empty()) {
            (Some(afi), Some(subtype), Some(safi), true) => {
                Ok(RouteRefreshRepr { afi, subtype, safi })
            }
            _ => {
                let mut data = vec![0xffu8; 16];
                data.extend_from_slice(&((body.len() + 19) as u16).to_be_bytes());
                data.push(5);
                data.extend_from_slice(body.get(..body.len().min(64)).unwrap_or(&[]));
                Err(NotifyError::new(
                    code::ROUTE_REFRESH,
                    code::ROUTE_REFRESH_BAD_LENGTH,
                    data,
                ))
            }
        }
    }

    /// Appends the body to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.afi.to_be_bytes());
        out.push(self.subtype);
        out.push(self.safi);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Ctx, Message};
    use super::*;

    #[test]
    fn shutdown_communication() {
        let n = NotificationRepr::shutdown(code::CEASE_ADMIN_SHUTDOWN, "maintenance window");
        assert_eq!(n.data[0], 18);
        let b = Message::Notification(n.clone())
            .emit(&Ctx::default())
            .unwrap();
        assert_eq!(b.len(), 19 + 2 + 19);
        let Message::Notification(p) = Message::parse(&b, &Ctx::default()).unwrap() else {
            panic!()
        };
        assert_eq!(p, n);
        assert_eq!(p.shutdown_message().as_deref(), Some("maintenance window"));
        assert!(p.describe().contains("maintenance window"));
        // 300 bytes are cut to 255 at a char boundary
        let long = "é".repeat(150);
        let n = NotificationRepr::shutdown(code::CEASE_ADMIN_RESET, &long);
        assert_eq!(n.data[0], 254);
        assert_eq!(n.shutdown_message().unwrap().chars().count(), 127);
    }

    #[test]
    fn route_refresh() {
        let r = RouteRefreshRepr {
            afi: 2,
            subtype: 0,
            safi: 1,
        };
        let b = Message::RouteRefresh(r).emit(&Ctx::default()).unwrap();
        assert_eq!(&b[16..], &[0, 23, 5, 0, 2, 0, 1]);
        assert_eq!(
            Message::parse(&b, &Ctx::default()),
            Ok(Message::RouteRefresh(r))
        );
        let mut bad = b.clone();
        bad.push(0);
        bad[17] = 24;
        let e = Message::parse(&bad, &Ctx::default()).unwrap_err();
        assert_eq!((e.code, e.subcode), (7, 1));
    }
}
