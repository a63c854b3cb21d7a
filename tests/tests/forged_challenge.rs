//! Pre-shared-key joins cannot be held up by whoever lacks the key: a device refuses a
//! CHALLENGE not sealed under its challenge key, however late its issue time, and a device
//! whose answer to a challenge goes unanswered starts over with a fresh nonce.

mod keyed;

use std::collections::BTreeSet;

use keyed::{joins, keyed, link};
use pcxses_core::wire::{Bottle, Challenge, JoinNonce};
use pcxses_core::InputError;
use pcxses_tests::lab::Verdict;

#[test]
fn a_forged_challenge_does_not_keep_a_keyed_device_from_joining() {
    let mut lab = keyed(2);
    // Hold the AC's challenges to dev0 back until the forgery is in.
    lab.drop_where(|p| p.to == link(0) && p.kind() == "challenge");
    lab.run(5);
    let nonce = match lab
        .sent("good_morning")
        .iter()
        .rev()
        .find(|p| p.from == link(0))
    {
        Some(p) => match p.bottle() {
            Some(Bottle::GoodMorning(gm)) => gm.nonce,
            _ => unreachable!("a GOOD_MORNING"),
        },
        None => panic!("dev0 sent no GOOD_MORNING"),
    };
    let mut challenge = [0u8; 16];
    challenge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    let mut forged = Vec::new();
    Bottle::Challenge(Challenge { nonce, challenge })
        .encode_to_vec(&mut forged, 1200)
        .expect("encodable");
    assert_eq!(
        lab.inject_to_device(0, &forged),
        Err(InputError::Unauthenticated)
    );
    // With a trailer made up without the key.
    forged.extend_from_slice(&[0u8; 4]);
    forged.extend_from_slice(&[0x5a; 16]);
    assert_eq!(
        lab.inject_to_device(0, &forged),
        Err(InputError::Unauthenticated)
    );
    assert_eq!(lab.device(0).stats().unauthenticated, 2);
    lab.clear_filter();
    lab.run(1_000);
    assert_eq!(joins(&lab, 0), 1);
    assert!(lab.device(0).session().is_some());
}

#[test]
fn a_device_whose_answer_to_a_challenge_goes_unanswered_starts_over_with_a_fresh_nonce() {
    let mut lab = keyed(1);
    // Lose every sealed GOOD_MORNING for a while.
    lab.set_filter(|p| {
        if p.kind() == "good_morning" && !p.is_plain() {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    lab.run(300);
    let plain: Vec<JoinNonce> = lab
        .sent("good_morning")
        .iter()
        .filter(|p| p.is_plain())
        .filter_map(|p| match p.bottle() {
            Some(Bottle::GoodMorning(gm)) => Some(gm.nonce),
            _ => None,
        })
        .collect();
    let nonces: BTreeSet<[u8; 8]> = plain.iter().map(|n| n.0).collect();
    assert!(plain.len() >= 2, "{} plain GOOD_MORNINGs", plain.len());
    assert_eq!(nonces.len(), plain.len(), "each attempt has a fresh nonce");
    assert_eq!(joins(&lab, 0), 0);
    lab.clear_filter();
    lab.run(1_000);
    assert_eq!(joins(&lab, 0), 1);
}
