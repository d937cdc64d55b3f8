//! The worked examples of `docs/protocol.md` ("Services: framing, RPC,
//! directory, blob") are generated here: each message is encoded, framed and
//! compared with the hex in the document, and the hex decodes back to the
//! message. Run with `--nocapture` to print them.

use dsb_app::bus::blob::{blob_hash, BlobRequest, BlobResponse};
use dsb_app::bus::codec::{decode, encode};
use dsb_app::bus::rpc::{RemoteError, RpcRequest, RpcResponse, RpcResult};
use dsb_app::bus::sd::{SdEntry, SdRequest, SdResponse};
use serde::de::DeserializeOwned;
use serde::Serialize;

const DOC: &str = include_str!("../../docs/protocol.md");

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

/// Encodes `msg`, checks the round trip and that the document shows the frame.
fn example<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    what: &str,
    msg: &T,
) -> Vec<u8> {
    let payload = encode(msg).unwrap();
    assert_eq!(&decode::<T>(&payload).unwrap(), msg, "{what}");
    let line = hex(&framed(&payload));
    println!("{what}\n{line}\n");
    assert!(
        DOC.contains(&line),
        "docs/protocol.md lacks the example for {what}:\n{line}"
    );
    payload
}

fn abc_hash() -> [u8; 32] {
    blob_hash(b"abc")
}

#[test]
fn the_blake2s_example_is_rfc_7693s_vector() {
    // RFC 7693, Appendix B: BLAKE2s-256("abc").
    let line = hex(&abc_hash());
    assert_eq!(
        line,
        "50 8c 5e 8c 32 7c 14 e2 e1 a7 2b a3 4e eb 45 2f 37 45 8b 20 9e d6 3a 29 4d 99 9b 4c 86 67 59 82"
    );
}

#[test]
fn varint_examples_are_postcards() {
    for (v, h) in [
        (0u64, "00"),
        (127, "7f"),
        (128, "80 01"),
        (300, "ac 02"),
        (1_048_576, "80 80 40"),
    ] {
        assert_eq!(hex(&encode(&v).unwrap()), h);
        assert!(DOC.contains(&format!("`{h}`")), "varint {v} = {h} missing");
    }
    assert_eq!(hex(&encode(&u32::MAX).unwrap()), "ff ff ff ff 0f");
    // Postcard decoders take a non-minimal varint within the type's length...
    assert_eq!(decode::<u32>(&[0x80, 0x00]), Ok(0));
    // ...but not one with bits beyond the type, nor one too long.
    assert!(decode::<u32>(&[0xff, 0xff, 0xff, 0xff, 0x1f]).is_err());
    assert!(decode::<u16>(&[0x80, 0x80, 0x80, 0x00]).is_err());
    assert!(decode::<bool>(&[2]).is_err());
    assert!(decode::<Option<u8>>(&[2]).is_err());
    assert_eq!(hex(&encode(&Some(5u8)).unwrap()), "01 05");
    assert_eq!(hex(&encode(&None::<u8>).unwrap()), "00");
}

#[test]
fn rpc_and_directory_examples() {
    let list = example("SdRequest::List", &SdRequest::List);
    example(
        "RpcRequest { id: 1, body: SdRequest::List }",
        &RpcRequest { id: 1, body: list },
    );
    let answer = encode(&SdResponse {
        services: vec![
            SdEntry {
                name: "blob".into(),
                allowed: true,
            },
            SdEntry {
                name: "sd".into(),
                allowed: true,
            },
        ],
    })
    .unwrap();
    example(
        "RpcResponse { id: 1, result: Ok(SdResponse [blob: allowed, sd: allowed]) }",
        &RpcResponse {
            id: 1,
            result: RpcResult::Ok(answer),
        },
    );
    example(
        "RpcResponse { id: 300, result: Err { code: 1, message: \"request too large\" } }",
        &RpcResponse {
            id: 300,
            result: RpcResult::Err(RemoteError {
                code: 1,
                message: "request too large".into(),
            }),
        },
    );
}

#[test]
fn blob_examples() {
    let h = abc_hash();
    example(
        "BlobRequest::Put { name: \"abc.txt\", size: 3, hash: H(abc), offset: 0 }",
        &BlobRequest::Put {
            name: "abc.txt".into(),
            size: 3,
            hash: h,
            offset: 0,
        },
    );
    example(
        "BlobRequest::Get { name: \"abc.txt\", offset: 300 }",
        &BlobRequest::Get {
            name: "abc.txt".into(),
            offset: 300,
        },
    );
    example(
        "BlobRequest::Stat { name: \"abc.txt\" }",
        &BlobRequest::Stat {
            name: "abc.txt".into(),
        },
    );
    example(
        "BlobResponse::Stored { size: 3, hash: H(abc) }",
        &BlobResponse::Stored { size: 3, hash: h },
    );
    example(
        "BlobResponse::Data { size: 3, hash: H(abc) }",
        &BlobResponse::Data { size: 3, hash: h },
    );
    example(
        "BlobResponse::Stat { size: 1048576, have: 300, hash: H(abc) }",
        &BlobResponse::Stat {
            size: 1_048_576,
            have: 300,
            hash: h,
        },
    );
    example(
        "BlobResponse::Err { code: 2, message: \"too-large\" }",
        &BlobResponse::Err {
            code: 2,
            message: "too-large".into(),
        },
    );
}
