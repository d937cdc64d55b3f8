//! Fuzz the RPC state machines against a hostile peer: the input is what
//! the peer writes on the channel, cut into chunks (first byte of each
//! chunk: its length) and sometimes followed by FIN or RESET. An
//! `RpcServer` answers every request with its body; an `RpcClient` with
//! calls in flight reads the same bytes as answers. Never panics; the
//! buffers stay within their caps; every call ends exactly once.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dsb_app_fuzz::run_rpc_peer(data);
});
