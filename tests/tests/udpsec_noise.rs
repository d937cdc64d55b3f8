//! udp-sec connections driven by the real `dsb-noise` handshake
//! ([`NoiseHandshake`]): the attested XK with identity binding that the TCP
//! path runs, carried in udp-sec handshake datagrams. The responder checks
//! message 3 against its trust store; a failure leaves no session and names
//! the id the initiator claimed.

use dsb_noise::{
    Binding, DeviceId, HandshakeConfig, Identity, NoiseError, StaticTrust, TrustStore,
};
use dsb_transports::udpsec::{
    CloseReason, Config, Connection, Event, NoiseHandshake, MAX_DATAGRAM,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use smoltcp::time::{Duration, Instant};

type Conn = Connection<NoiseHandshake>;

/// A trust store that pins exactly one device key for `id`.
#[allow(non_snake_case)]
fn One(id: &str, b: Binding) -> StaticTrust {
    StaticTrust::new().with(&DeviceId::new(id).unwrap(), b.device_key)
}

fn ident(id: &str) -> Identity {
    Identity::from_test_seed(id).unwrap()
}

/// node-a connects to node-b (whose announce bound `b_binding`).
fn pair(b_binding: Binding, now: Instant) -> (Conn, Conn) {
    let a = ident("node-a");
    let b = ident("node-b");
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let cfg = HandshakeConfig::default();
    let hs_a = NoiseHandshake::initiator(
        &a,
        &DeviceId::new("node-b").unwrap(),
        b_binding,
        &mut rng,
        now,
        &cfg,
    )
    .unwrap();
    let hs_b = NoiseHandshake::responder(&b, &mut rng, now, &cfg).unwrap();
    let ca = Connection::connect(Config::default(), 42, hs_a, now).unwrap();
    let cb = Connection::accept(Config::default(), 42, hs_b, now);
    (ca, cb)
}

/// Exchanges datagrams (no loss, no delay) until both sides are quiet.
/// `trust_b` is node-b's trust store; node-a (initiator) needs none.
fn pump(a: &mut Conn, b: &mut Conn, trust_b: &mut dyn TrustStore, now: Instant) {
    let mut buf = vec![0u8; 2048];
    loop {
        let mut any = false;
        while let Some(n) = a.poll_transmit(now, &mut buf) {
            assert!(n <= MAX_DATAGRAM);
            let _ = b.handle_datagram(now, &buf[..n], trust_b);
            any = true;
        }
        while let Some(n) = b.poll_transmit(now, &mut buf) {
            assert!(n <= MAX_DATAGRAM);
            let _ = a.handle_datagram(now, &buf[..n], &mut dsb_noise::NoTrust);
            any = true;
        }
        if !any {
            return;
        }
    }
}

fn events(c: &mut Conn) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

#[test]
fn bound_peers_get_a_session_and_learn_who_is_on_the_other_side() {
    let now = Instant::from_millis(0);
    let (mut a, mut b) = pair(ident("node-b").binding(), now);
    let mut trust = One("node-a", ident("node-a").binding());
    pump(&mut a, &mut b, &mut trust, now);
    assert!(a.is_established() && b.is_established());
    assert_eq!(
        a.handshake()
            .unwrap()
            .authenticated_peer()
            .unwrap()
            .as_str(),
        "node-b"
    );
    assert_eq!(
        b.handshake()
            .unwrap()
            .authenticated_peer()
            .unwrap()
            .as_str(),
        "node-a"
    );
    assert_eq!(a.handshake_hash(), b.handshake_hash());
    // The stream works both ways under the Noise split keys.
    assert_eq!(a.write(b"ping"), 4);
    assert_eq!(b.write(b"pong"), 4);
    pump(&mut a, &mut b, &mut trust, now + Duration::from_millis(1));
    let mut out = [0u8; 8];
    assert_eq!(b.read(&mut out), 4);
    assert_eq!(&out[..4], b"ping");
    assert_eq!(a.read(&mut out), 4);
    assert_eq!(&out[..4], b"pong");
}

#[test]
fn an_initiator_the_trust_store_binds_to_other_keys_is_refused_at_message_3() {
    let now = Instant::from_millis(0);
    let (mut a, mut b) = pair(ident("node-b").binding(), now);
    // node-b's table binds "node-a" to someone else's keys.
    let mut trust = One("node-a", ident("node-x").binding());
    pump(&mut a, &mut b, &mut trust, now);
    assert!(!b.is_established());
    assert!(!events(&mut b)
        .iter()
        .any(|e| matches!(e, Event::Connected { .. })));
    assert_eq!(
        b.close_reason(),
        Some(CloseReason::HandshakeFailed(
            dsb_transports::udpsec::HsError::new("identity-mismatch")
        ))
    );
    let hs = b.handshake().unwrap();
    assert_eq!(hs.error(), Some(NoiseError::IdentityMismatch));
    assert_eq!(hs.claimed_peer().unwrap().as_str(), "node-a");
    assert!(hs.authenticated_peer().is_none());
    assert_eq!(b.readable(), 0);
}

#[test]
fn an_unknown_initiator_is_refused() {
    let now = Instant::from_millis(0);
    let (mut a, mut b) = pair(ident("node-b").binding(), now);
    pump(&mut a, &mut b, &mut dsb_noise::NoTrust, now);
    assert!(!b.is_established());
    assert_eq!(
        b.handshake().unwrap().error(),
        Some(NoiseError::UnknownPeer)
    );
}

#[test]
fn an_initiator_expecting_other_keys_never_gets_a_session() {
    let now = Instant::from_millis(0);
    // node-a expects node-b to hold node-x's keys (a stale or forged announce):
    // XK encrypts message 1 to that key, so node-b cannot read it.
    let (mut a, mut b) = pair(ident("node-x").binding(), now);
    let mut trust = One("node-a", ident("node-a").binding());
    pump(&mut a, &mut b, &mut trust, now);
    assert!(!a.is_established() && !b.is_established());
    assert_eq!(
        b.handshake().unwrap().error(),
        Some(NoiseError::DecryptFailed)
    );
    // node-a re-sends message 1 until its handshake timeout, then gives up.
    let mut t = now;
    while let Some(d) = a.poll_timeout() {
        t = d;
        a.handle_timeout(t);
        pump(&mut a, &mut b, &mut trust, t);
    }
    assert_eq!(a.close_reason(), Some(CloseReason::HandshakeTimeout));
    assert!(t - now >= Config::default().handshake_timeout);
    assert!(a.handshake().unwrap().authenticated_peer().is_none());
}
