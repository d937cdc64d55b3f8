//! Store accounting details the channel-level tests (`app/tests/bus_blob.rs`)
//! cannot see.

use alloc::vec;

use smoltcp::time::Instant;

use super::store::{Begin, BlobStore, StoreConfig};
use super::wire::{blob_hash, BlobCode};

fn t(ms: i64) -> Instant {
    Instant::from_millis(ms)
}

#[test]
fn a_replaced_blob_counts_until_its_successor_commits() {
    let mut s = BlobStore::new(StoreConfig {
        blob_cap: 100,
        total_cap: 150,
        ..StoreConfig::default()
    });
    s.insert("a", vec![1; 100], t(0)).unwrap();
    let new = vec![2; 60];
    // 100 + 60 > 150: the old one still counts, so the new upload does not fit.
    assert_eq!(
        s.begin_put("a", 60, blob_hash(&new), 0, t(1)),
        Err(BlobCode::StoreFull)
    );
    let new = vec![2; 50];
    let Ok(Begin::Upload { id, have: 0 }) = s.begin_put("a", 50, blob_hash(&new), 0, t(1)) else {
        panic!("upload refused");
    };
    assert_eq!(s.used(), 150);
    s.append(id, &new, t(2)).unwrap();
    s.commit(id).unwrap();
    assert_eq!(s.used(), 50);
    assert_eq!(s.get("a").unwrap().0, &new[..]);
}

#[test]
fn a_reader_of_a_replaced_blob_notices_by_its_generation() {
    let mut s = BlobStore::default();
    s.insert("a", vec![1; 10], t(0)).unwrap();
    let (gen, _, _) = s.lookup("a").unwrap();
    assert_eq!(s.chunk("a", gen, 4, 100), Some(&[1u8; 6][..]));
    s.insert("a", vec![2; 10], t(1)).unwrap();
    assert_eq!(s.chunk("a", gen, 4, 100), None);
}

#[test]
fn a_second_put_of_the_same_partial_takes_it_over() {
    let mut s = BlobStore::default();
    let data = vec![3; 10];
    let h = blob_hash(&data);
    let Ok(Begin::Upload { id: first, .. }) = s.begin_put("p", 10, h, 0, t(0)) else {
        panic!("upload refused");
    };
    s.append(first, &data[..4], t(1)).unwrap();
    let Ok(Begin::Upload {
        id: second,
        have: 4,
    }) = s.begin_put("p", 10, h, 4, t(2))
    else {
        panic!("resume refused");
    };
    // The first writer is cut off; the second completes.
    assert_eq!(s.append(first, &data[4..], t(3)), Err(BlobCode::Aborted));
    s.append(second, &data[4..], t(3)).unwrap();
    s.commit(second).unwrap();
    assert_eq!(s.get("p").unwrap().1, h);
    assert_eq!(s.used(), 10);
}

#[test]
fn commit_refuses_an_incomplete_upload_and_keeps_it() {
    let mut s = BlobStore::default();
    let Ok(Begin::Upload { id, .. }) = s.begin_put("p", 10, [0; 32], 0, t(0)) else {
        panic!("upload refused");
    };
    s.append(id, &[1; 3], t(1)).unwrap();
    assert_eq!(s.append(id, &[1; 8], t(1)), Err(BlobCode::BadOffset));
    assert_eq!(s.commit(id), Err(BlobCode::Incomplete));
    assert_eq!(s.stat("p").unwrap().have, 3);
}
