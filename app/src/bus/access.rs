//! Who may open a channel to a published service. Deny by default: a
//! service is reachable only by the device ids its policy names, or by any
//! authenticated peer when that is chosen explicitly.

use dsb_noise::DeviceId;

/// Most device ids one policy names.
pub const MAX_ALLOWED: usize = 16;

/// The access policy of one published service (held once per published
/// service, at most `MAX_PUBLISHED`).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Access {
    /// Nobody (the default): every OPEN is refused `access-denied`.
    #[default]
    Deny,
    /// Only these device ids.
    Only(heapless::Vec<DeviceId, MAX_ALLOWED>),
    /// Any peer whose identity was authenticated and bound.
    AnyAuthenticated,
}

/// A policy with more than [`MAX_ALLOWED`] ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyIds;

impl core::fmt::Display for TooManyIds {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "an access policy names at most {MAX_ALLOWED} ids")
    }
}

impl core::error::Error for TooManyIds {}

impl From<TooManyIds> for crate::bus::ApiError {
    fn from(_: TooManyIds) -> Self {
        crate::bus::ApiError::TooManyIds
    }
}

impl Access {
    /// Only `ids` (at most [`MAX_ALLOWED`]; duplicates are kept once).
    pub fn only<'a>(ids: impl IntoIterator<Item = &'a DeviceId>) -> Result<Access, TooManyIds> {
        let mut v: heapless::Vec<DeviceId, MAX_ALLOWED> = heapless::Vec::new();
        for id in ids {
            if !v.contains(id) {
                v.push(*id).map_err(|_| TooManyIds)?;
            }
        }
        Ok(Access::Only(v))
    }

    /// Adds `id` to an `Only` list (a `Deny` becomes `Only`; `AnyAuthenticated` stays).
    pub fn allow(&mut self, id: DeviceId) -> Result<(), TooManyIds> {
        match self {
            Access::AnyAuthenticated => Ok(()),
            Access::Deny => {
                *self = Access::only([&id])?;
                Ok(())
            }
            Access::Only(v) => {
                if !v.contains(&id) {
                    v.push(id).map_err(|_| TooManyIds)?;
                }
                Ok(())
            }
        }
    }

    /// Whether `peer` (an authenticated, bound device id) may open a channel.
    pub fn allows(&self, peer: &DeviceId) -> bool {
        match self {
            Access::Deny => false,
            Access::Only(v) => v.contains(peer),
            Access::AnyAuthenticated => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> DeviceId {
        DeviceId::new(s).unwrap()
    }

    #[test]
    fn deny_is_the_default_and_lists_are_exact() {
        let (a, b) = (id("node-a"), id("node-b"));
        assert!(!Access::default().allows(&a));
        let only = Access::only([&b]).unwrap();
        assert!(only.allows(&b) && !only.allows(&a));
        assert!(Access::AnyAuthenticated.allows(&a));
        let mut p = Access::Deny;
        p.allow(a).unwrap();
        assert!(p.allows(&a) && !p.allows(&b));
        let many: alloc::vec::Vec<DeviceId> = (0..=MAX_ALLOWED)
            .map(|i| id(&alloc::format!("n{i}")))
            .collect();
        assert_eq!(Access::only(many.iter()), Err(TooManyIds));
    }
}
