//! What applications ask the node to carry out for them: RPC calls to a
//! peer's service and blob transfers to or from a peer's store. The node
//! opens and drives the channels; the application hears `CallDone` /
//! `TransferDone` and collects the result.
//!
//! ```text
//! let call = node.call(&peer, "sd", &body, Duration::from_secs(2))?;
//! ... NodeEvent::CallDone(call)
//! let answer = node.take_call(call);             // Some(Ok(bytes)) or Some(Err(RpcError))
//! let t = node.blob_put(&peer, "fw.bin", data)?;
//! ... NodeEvent::TransferDone(t)
//! let r = node.take_transfer(t);                  // Some(Ok(Transferred::Put(..)))
//! ```

use alloc::vec::Vec;

use crate::net::Network;
use dsb_noise::DeviceId;
use serde::Serialize;
use smoltcp::time::Duration;

use super::owned::{CallId, Calls, Owned, Suspended, TransferId, Transferred};
use super::requests::Progress;
use super::NodeOn;
use crate::bus::blob::{valid_name, BlobError, BlobStore, GetResume, StoreConfig};
use crate::bus::rpc::RpcError;
use crate::bus::{codec, ApiError};
use dsb_transports::mux::ServiceName;

impl<N: Network> NodeOn<N> {
    /// Calls `service` on `peer` with `body` (one RPC request); the answer
    /// or a typed error arrives by `timeout`. Calls to one service of one
    /// peer share a channel and are pipelined. Needs a session with the
    /// peer (`connect` first).
    pub fn call(
        &mut self,
        peer: &DeviceId,
        service: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<CallId, ApiError> {
        let bus = self.bus.as_mut().ok_or(ApiError::NotReady)?;
        let name = ServiceName::new(service.as_bytes()).ok_or(ApiError::InvalidName)?;
        if !bus.requests.has_room_for_call() {
            return Err(ApiError::Busy);
        }
        let now = bus.last_poll;
        let s = bus.sessions.get_mut(peer).ok_or(ApiError::NoSession)?;
        let open = s.owned.iter().position(|(_, o)| match o {
            Owned::Calls(c) => c.service == name && c.usable(),
            _ => false,
        });
        let i = match open {
            Some(i) => i,
            None => {
                let ch = s.mux.open(service)?;
                s.owned
                    .push((ch, Owned::Calls(alloc::boxed::Box::new(Calls::new(name)))));
                s.owned.len() - 1
            }
        };
        let id = bus.requests.new_call();
        let result = match s.owned.get_mut(i) {
            Some((_, Owned::Calls(c))) => c.call(id, body, now + timeout),
            _ => Err(RpcError::ChannelClosed),
        };
        match result {
            Ok(()) => Ok(id),
            Err(e) => {
                bus.requests.forget_call(id);
                Err(match e {
                    RpcError::TooLarge => ApiError::TooLarge,
                    _ => ApiError::Busy,
                })
            }
        }
    }

    /// [`Node::call`] with a `postcard`-encoded message as the body.
    pub fn call_msg<T: Serialize + ?Sized>(
        &mut self,
        peer: &DeviceId,
        service: &str,
        msg: &T,
        timeout: Duration,
    ) -> Result<CallId, ApiError> {
        let body = codec::encode(msg).map_err(|_| ApiError::TooLarge)?;
        self.call(peer, service, &body, timeout)
    }

    /// The answer to call `id` once `CallDone(id)` was reported; the call
    /// is forgotten then. `None` while it runs (or for an unknown id).
    pub fn take_call(&mut self, id: CallId) -> Option<Result<Vec<u8>, RpcError>> {
        self.bus.as_mut()?.requests.take_call(id)
    }

    /// Forgets call `id`: its answer, if one comes, is dropped.
    pub fn cancel_call(&mut self, id: CallId) {
        if let Some(bus) = self.bus.as_mut() {
            bus.requests.forget_call(id);
        }
    }

    /// Uploads `data` as `name` into `peer`'s blob store. Hash-checked by
    /// the peer before it stores it. Transfers to one peer run one after
    /// the other; one whose session ends continues on the next.
    pub fn blob_put(
        &mut self,
        peer: &DeviceId,
        name: &str,
        data: Vec<u8>,
    ) -> Result<TransferId, ApiError> {
        if !valid_name(name) {
            return Err(ApiError::InvalidName);
        }
        let size = data.len() as u64;
        let what = Suspended::Put {
            name: name.into(),
            data,
        };
        self.queue_transfer(peer, what, Some(size))
    }

    /// Downloads `name` from `peer`'s blob store, refusing blobs larger
    /// than `cap` bytes before any is buffered; verified against its hash.
    pub fn blob_get(
        &mut self,
        peer: &DeviceId,
        name: &str,
        cap: usize,
    ) -> Result<TransferId, ApiError> {
        if !valid_name(name) {
            return Err(ApiError::InvalidName);
        }
        let what = Suspended::Get {
            resume: GetResume {
                name: name.into(),
                ..GetResume::default()
            },
            cap,
        };
        self.queue_transfer(peer, what, None)
    }

    fn queue_transfer(
        &mut self,
        peer: &DeviceId,
        what: Suspended,
        total: Option<u64>,
    ) -> Result<TransferId, ApiError> {
        let bus = self.bus.as_mut().ok_or(ApiError::NotReady)?;
        if !bus.requests.has_room_for_transfer() {
            return Err(ApiError::Busy);
        }
        if bus.sessions.get(peer).is_none() {
            return Err(ApiError::NoSession);
        }
        Ok(bus.requests.new_transfer(*peer, what, total))
    }

    /// How far transfer `id` got.
    pub fn transfer_progress(&self, id: TransferId) -> Option<Progress> {
        let bus = self.bus.as_ref()?;
        bus.requests.progress(id, &bus.sessions)
    }

    /// The result of transfer `id` once `TransferDone(id)` was reported;
    /// the transfer is forgotten then.
    pub fn take_transfer(&mut self, id: TransferId) -> Option<Result<Transferred, BlobError>> {
        self.bus.as_mut()?.requests.take_transfer(id)
    }

    /// Abandons transfer `id`: its channel is reset, its result dropped.
    pub fn cancel_transfer(&mut self, id: TransferId) {
        let Some(bus) = self.bus.as_mut() else { return };
        bus.requests.forget_transfer(id);
        bus.sessions.drop_transfer(id);
    }

    /// The blob store this node serves under `blob` (created by publishing
    /// `blob`, with the caps of [`super::NodeConfig::blob_store`]).
    pub fn blob_store(&self) -> Option<&BlobStore> {
        self.store.as_ref()
    }

    /// The store, to put or remove blobs locally.
    pub fn blob_store_mut(&mut self) -> Option<&mut BlobStore> {
        self.store.as_mut()
    }

    pub(crate) fn ensure_store(&mut self, cfg: StoreConfig) {
        if self.store.is_none() {
            self.store = Some(BlobStore::new(cfg));
        }
    }
}
