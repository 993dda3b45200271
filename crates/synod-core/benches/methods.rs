//! The consensus methods beyond the vote (docs/PROTOCOL.md §15–§16): what a
//! belief proposal's pool costs per response and at close, and what a
//! proof-of-work admission stamp costs to mint and to check.
//!
//! `cargo bench -p synod-core --bench methods`

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use serde_json::json;
use synod_core::Keypair;
use synod_core::belief::{BeliefTally, pool};
use synod_core::policy::{Policy, Pool, Stakes};
use synod_core::stamp::{meets, mint, stamp_base, stamp_hash};
use synod_core::wire::Digest;

fn main() {
    divan::main();
}

/// `n` pseudo-random distributions over `m` options, in millionths.
fn distributions(n: usize, m: usize) -> Vec<Vec<u32>> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            let mut d: Vec<u32> = (0..m)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 1_000) as u32
                })
                .collect();
            let sum: u32 = d.iter().sum::<u32>().max(1);
            for p in &mut d {
                *p = *p * 1_000_000 / sum;
            }
            let rest = 1_000_000 - d.iter().sum::<u32>();
            d[0] += rest;
            d
        })
        .collect()
}

fn policy(p: Pool) -> Policy {
    Policy {
        pool: p,
        ..Policy::default_for(Stakes::Medium)
    }
}

/// Counting one response into a belief proposal's pool (16 options): per
/// option one exact logarithm (log pool) or one product (linear).
#[divan::bench(args = [Pool::Log, Pool::Linear])]
fn belief_add_16_options(bencher: Bencher, p: Pool) {
    let ds = distributions(1_000, 16);
    let policy = policy(p);
    bencher.counter(ItemsCount::new(ds.len())).bench(|| {
        let mut tally = BeliefTally::new(16);
        for d in &ds {
            tally.add(&policy, 1_000_000_000_000_000_000, black_box(d));
        }
        tally
    });
}

/// Pooling at close (16 options): per option one division and one exact
/// exponential (log pool).
#[divan::bench(args = [Pool::Log, Pool::Linear])]
fn belief_pool_16_options(bencher: Bencher, p: Pool) {
    let policy = policy(p);
    let mut tally = BeliefTally::new(16);
    for d in distributions(1_000, 16) {
        tally.add(&policy, 1_000_000_000_000_000_000, &d);
    }
    bencher.bench(|| pool(&policy, black_box(&tally)));
}

fn proposal_body(i: u64) -> serde_json::Value {
    json!({"space": "bench", "created_at": 1_700_000_000_000u64 + i, "domain": "ops.deploy",
           "action": {"kind": "deploy", "summary": "Deploy build 7"},
           "confidence": "0.8", "stakes": "low", "deadline": 1_700_000_600_000u64})
}

/// One stamp hash: the unit of work of minting.
#[divan::bench]
fn stamp_hash_one(bencher: Bencher) {
    let base = Digest::of(b"base");
    let mut nonce = 0u64;
    bencher.bench_local(|| {
        nonce += 1;
        stamp_hash(black_box(&base), nonce)
    });
}

/// What the node pays to check a stamp: the proposal's canonical bytes
/// without the stamp, their hash, and one stamp hash.
#[divan::bench]
fn stamp_check(bencher: Bencher) {
    let key = Keypair::from_seed(&[1; 32]);
    let body = proposal_body(0);
    bencher.bench(|| {
        let base = stamp_base(key.id(), black_box(&body));
        meets(&base, 12_345, 20)
    });
}

/// Minting a stamp for 64 different proposals at once; the mean over them
/// approaches 2^difficulty hashes each.
#[divan::bench(args = [8, 12, 16], sample_count = 5, sample_size = 1)]
fn stamp_mint_64_proposals(bencher: Bencher, difficulty: u32) {
    let key = Keypair::from_seed(&[1; 32]);
    let bases: Vec<Digest> = (0..64)
        .map(|i| stamp_base(key.id(), &proposal_body(i)))
        .collect();
    bencher.counter(ItemsCount::new(bases.len())).bench(|| {
        bases
            .iter()
            .map(|b| mint(b, difficulty).unwrap())
            .sum::<u64>()
    });
}
