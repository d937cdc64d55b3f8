#!/usr/bin/env python3
"""Independent encoder of announce v1 (from docs/protocol.md), used to produce
and cross-check the golden vectors in tests/wire.rs with a second Ed25519
implementation (pyca/cryptography). Prints Rust byte arrays.

SECURITY: test keys, not for production.
"""
import struct
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

MAGIC = b"DSBA"
VERSION = 1
CONTEXT = b"dsoftbus-announce-v1"


def name(b):
    assert 1 <= len(b) <= 32
    return bytes([len(b)]) + b


def announce(seed, device_id, noise_static, tcp, udp, services, seq):
    sk = Ed25519PrivateKey.from_private_bytes(seed)
    pk = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    body = MAGIC + bytes([VERSION]) + name(device_id) + pk + noise_static
    body += struct.pack(">HH", tcp, udp) + bytes([len(services)])
    for s in services:
        body += name(s)
    body += struct.pack(">Q", seq)
    sig = sk.sign(CONTEXT + body)
    return body + sig


def rust(label, b):
    print(f"// {label}: {len(b)} bytes")
    print(f"const {label}: [u8; {len(b)}] = [")
    for i in range(0, len(b), 16):
        print("    " + " ".join(f"0x{x:02x}," for x in b[i:i + 16]))
    print("];")


full = announce(bytes(range(32)), b"node-a", bytes([0x42] * 32), 37021, 37022,
                [b"dsoftbus.ping", b"mux"], (7 << 32) | 3)
minimal = announce(bytes([0xA5] * 32), b"b", bytes(range(32, 64)), 0, 0, [], 1)
rust("GOLDEN_FULL", full)
rust("GOLDEN_MINIMAL", minimal)
