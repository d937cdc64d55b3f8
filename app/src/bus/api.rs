//! The application's view of the bus: channel handles, errors, the
//! published-service table and the service list peers announce.

use core::fmt;

use dsb_noise::DeviceId;
use dsb_transports::mux::{ChannelError, ChannelId, ServiceName};

use super::access::Access;

/// Most services one node publishes (each goes into its signed announce,
/// which carries at most 8 names).
pub const MAX_PUBLISHED: usize = 8;

/// A channel of a session: the peer, which session (a new session with
/// the same peer gets a new number, so stale handles fail cleanly), and the
/// mux channel id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChannelRef {
    pub peer: DeviceId,
    pub session: u32,
    pub id: ChannelId,
}

impl fmt::Display for ChannelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}/{}", self.peer.as_str(), self.session, self.id)
    }
}

/// Why an application call could not be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// The bus is not up yet (no address).
    NotReady,
    /// No session with that peer (call `connect` and wait for `SessionUp`).
    NoSession,
    /// The peer is not known from discovery (cannot be dialled).
    UnknownPeer,
    /// The handle belongs to a session that ended, or the channel is gone.
    StaleChannel,
    /// Not a valid service name (1..=32 bytes of `[A-Za-z0-9._-]`).
    InvalidName,
    /// [`MAX_PUBLISHED`] services are published already.
    TooManyServices,
    /// The policy names more ids than it may hold.
    TooManyIds,
    /// Too many calls, transfers or channels at once.
    Busy,
    /// The request or blob is larger than its cap.
    TooLarge,
    /// A channel-level refusal from the mux.
    Channel(ChannelError),
}

impl ApiError {
    /// Stable label.
    pub fn label(&self) -> &'static str {
        match self {
            ApiError::NotReady => "not-ready",
            ApiError::NoSession => "no-session",
            ApiError::UnknownPeer => "unknown-peer",
            ApiError::StaleChannel => "stale-channel",
            ApiError::InvalidName => "invalid-name",
            ApiError::TooManyServices => "too-many-services",
            ApiError::TooManyIds => "too-many-ids",
            ApiError::Busy => "busy",
            ApiError::TooLarge => "too-large",
            ApiError::Channel(e) => e.label(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl From<ChannelError> for ApiError {
    fn from(e: ChannelError) -> Self {
        match e {
            ChannelError::UnknownChannel | ChannelError::Closed | ChannelError::SessionClosed => {
                ApiError::StaleChannel
            }
            e => ApiError::Channel(e),
        }
    }
}

/// What serves a published service's channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handler {
    /// The application: it gets `ChannelAccepted` and reads and writes.
    App,
    /// `ping`: a byte echo served by the node (every byte written back, FIN after FIN).
    Ping,
    /// `sd`: the service directory served by the node.
    Directory,
    /// `blob`: the blob store served by the node.
    Blob,
}

impl Handler {
    /// The built-in handler of a reserved name, else `App`.
    pub fn for_name(name: &str) -> Handler {
        match name {
            PING => Handler::Ping,
            DIRECTORY => Handler::Directory,
            BLOB => Handler::Blob,
            _ => Handler::App,
        }
    }
}

/// Name of the built-in byte echo.
pub const PING: &str = "ping";
/// Name of the built-in service directory.
pub const DIRECTORY: &str = "sd";
/// Name of the built-in blob store.
pub const BLOB: &str = "blob";

/// One published service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub name: ServiceName,
    pub access: Access,
    pub handler: Handler,
}

/// The services this node publishes (bounded).
#[derive(Clone, Debug, Default)]
pub struct Services {
    list: heapless::Vec<Published, MAX_PUBLISHED>,
}

impl Services {
    /// Publishes (or re-publishes with a new policy) `name`.
    pub fn publish(&mut self, name: &str, access: Access) -> Result<(), ApiError> {
        let n = ServiceName::new(name.as_bytes()).ok_or(ApiError::InvalidName)?;
        if let Some(p) = self.list.iter_mut().find(|p| p.name == n) {
            p.access = access;
            return Ok(());
        }
        self.list
            .push(Published {
                name: n,
                access,
                handler: Handler::for_name(name),
            })
            .map_err(|_| ApiError::TooManyServices)
    }

    /// Withdraws `name`; true if it was published.
    pub fn withdraw(&mut self, name: &str) -> bool {
        let before = self.list.len();
        self.list.retain(|p| p.name.as_bytes() != name.as_bytes());
        before != self.list.len()
    }

    /// The service called `name`.
    pub fn get(&self, name: &[u8]) -> Option<&Published> {
        self.list.iter().find(|p| p.name.as_bytes() == name)
    }

    /// Every published service, in publication order.
    pub fn iter(&self) -> impl Iterator<Item = &Published> {
        self.list.iter()
    }

    /// Whether `peer` may open `name` (`None`: not published).
    pub fn allows(&self, name: &[u8], peer: &DeviceId) -> Option<bool> {
        self.get(name).map(|p| p.access.allows(peer))
    }
}

/// Most names in a [`ServiceList`] (the announce carries at most 8).
pub const MAX_LISTED: usize = 8;

/// The services a peer announces: a small, copyable list.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ServiceList {
    names: [Option<ServiceName>; MAX_LISTED],
}

impl ServiceList {
    /// The list of an announce's services (extra names beyond the cap are dropped).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a [u8]>) -> ServiceList {
        let mut l = ServiceList {
            names: [None; MAX_LISTED],
        };
        for (slot, n) in l.names.iter_mut().zip(names) {
            *slot = ServiceName::new(n);
        }
        l
    }

    /// The names, in announce order.
    pub fn iter(&self) -> impl Iterator<Item = &ServiceName> {
        self.names.iter().flatten()
    }

    /// Whether `name` is listed.
    pub fn contains(&self, name: &str) -> bool {
        self.iter().any(|n| n.as_bytes() == name.as_bytes())
    }
}

impl fmt::Debug for ServiceList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl fmt::Display for ServiceList {
    /// Comma-separated, as in `services=ping,sd,blob`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(n.as_str())?;
        }
        Ok(())
    }
}

impl core::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishing_is_bounded_and_replaces_the_policy() {
        let mut s = Services::default();
        let b = DeviceId::new("node-b").unwrap();
        s.publish("blob", Access::only([&b]).unwrap()).unwrap();
        assert_eq!(s.get(b"blob").unwrap().handler, Handler::Blob);
        assert_eq!(s.allows(b"blob", &b), Some(true));
        s.publish("blob", Access::Deny).unwrap();
        assert_eq!(s.allows(b"blob", &b), Some(false));
        assert_eq!(s.allows(b"nope", &b), None);
        assert_eq!(
            s.publish("bad name", Access::Deny),
            Err(ApiError::InvalidName)
        );
        for i in 1..MAX_PUBLISHED {
            s.publish(&alloc::format!("svc{i}"), Access::Deny).unwrap();
        }
        assert_eq!(
            s.publish("one-more", Access::Deny),
            Err(ApiError::TooManyServices)
        );
        assert!(s.withdraw("blob") && !s.withdraw("blob"));
    }

    #[test]
    fn a_service_list_prints_comma_separated() {
        let l = ServiceList::from_names([&b"ping"[..], b"sd", b"blob"]);
        assert_eq!(alloc::format!("{l}"), "ping,sd,blob");
        assert!(l.contains("sd") && !l.contains("bulk"));
    }
}
