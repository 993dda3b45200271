//! Resolution and incremental apply, next to the cost of one Ed25519
//! verification (the floor of what a response costs).
//!
//! `cargo bench -p synod-core --bench resolve`

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use serde_json::json;
use synod_core::fixed::{Authority, Confidence, Influence, Trust};
use synod_core::policy::{Policy, Stakes, Weighting};
use synod_core::tally::{Stance, Tally, resolve};
use synod_core::wire::{Digest, MessageType, SignedMessage, Verified};
use synod_core::{Keypair, Space};

fn main() {
    divan::main();
}

const T0: u64 = 1_700_000_000_000;

/// A deterministic stream of pseudo-random numbers.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn micros(&mut self) -> u32 {
        (self.next() % 1_000_001) as u32
    }
}

type Response = (Authority, Trust, Stance, Confidence);

fn responses(n: usize) -> Vec<Response> {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|_| {
            let (a, t) = (
                Authority::from_micros(rng.micros()),
                Trust::from_micros(rng.micros()),
            );
            let stance = match rng.next() % 3 {
                0 => Stance::Endorse,
                1 => Stance::Challenge,
                _ => Stance::Abstain,
            };
            (a, t, stance, Confidence::from_micros(rng.micros()))
        })
        .collect()
}

/// Sums every response into a tally and applies the rule, under `weighting`.
fn resolve_full(bencher: Bencher, n: usize, weighting: Weighting) {
    let responses = responses(n);
    let potential: u128 = responses
        .iter()
        .map(|(a, t, ..)| u128::from(Influence::of(*a, *t).0))
        .sum();
    let policy = Policy {
        weighting,
        ..Policy::default_for(Stakes::Medium)
    };
    bencher.counter(ItemsCount::new(n)).bench(|| {
        let mut tally = Tally::new(potential);
        for (a, t, stance, confidence) in black_box(&responses) {
            tally.add(&policy, *stance, *a, *t, *confidence);
        }
        resolve(&policy, &tally)
    });
}

/// The linear rule: one multiplication per response.
#[divan::bench(name = "resolve::full_linear", args = [10_000])]
fn resolve_linear(bencher: Bencher, n: usize) {
    resolve_full(bencher, n, Weighting::Linear);
}

/// The log-odds rule (the default): an exact logarithm per response.
#[divan::bench(name = "resolve::full_log_odds", args = [10_000])]
fn resolve_log_odds(bencher: Bencher, n: usize) {
    resolve_full(bencher, n, Weighting::LogOdds);
}

/// A space with `n` agents in `ops.*` and one critical proposal (critical so
/// that it never closes early), plus each agent's signed response.
fn space_with_votes(n: usize) -> (Space, Vec<Verified>, u64) {
    let key = |i: usize| Keypair::from_seed(&Digest::of(format!("agent-{i}").as_bytes()).0);
    let admin = Keypair::from_seed(&[1; 32]);
    let mut space = Space::new();
    let mut time = T0;
    let mut seq = 0;
    let append = |space: &mut Space, m: Verified, time: u64| {
        space.append(m, time).expect("setup message accepted");
    };
    append(
        &mut space,
        Verified::sign(
            MessageType::Configuration,
            json!({"space": "bench", "created_at": time, "seq": 0, "change": {"set": {"mode": "open", "open_authority_cap": "1"}}}),
            &admin,
        ),
        time,
    );
    for i in 0..=n {
        let body = json!({"space": "bench", "created_at": time, "seq": 1, "name": format!("agent {i}"),
                          "authorities": {"ops.*": "0.9"}});
        append(
            &mut space,
            Verified::sign(MessageType::Registration, body, &key(i)),
            time,
        );
        seq += 1;
    }
    time += 1;
    let proposal = Verified::sign(
        MessageType::Proposal,
        json!({"space": "bench", "created_at": time, "domain": "ops.deploy",
               "action": {"kind": "deploy", "summary": "deploy"}, "confidence": "0.9",
               "stakes": "critical", "deadline": time + 3_600_000}),
        &key(0),
    );
    let id = proposal.id();
    append(&mut space, proposal, time);
    let mut rng = XorShift(42);
    let votes = (1..=n)
        .map(|i| {
            let stance = if rng.next().is_multiple_of(2) {
                "endorse"
            } else {
                "challenge"
            };
            let confidence = synod_core::fixed::format_scaled(u128::from(rng.micros()), 6);
            Verified::sign(
                MessageType::Response,
                json!({"space": "bench", "created_at": time, "proposal": id, "stance": stance,
                       "confidence": confidence, "reasoning": "checked"}),
                &key(i),
            )
        })
        .collect();
    assert!(seq > 0);
    (space, votes, time)
}

/// Applies `n` responses one by one through the sequencer's path, each
/// updating the tally and the early-finality check incrementally. Signature
/// checks are not included: the node verifies before it sequences.
#[divan::bench(name = "space::apply_responses", args = [1_000, 10_000], sample_count = 20, sample_size = 1)]
fn apply_responses(bencher: Bencher, n: usize) {
    let (space, votes, time) = space_with_votes(n);
    bencher
        .counter(ItemsCount::new(n))
        .with_inputs(|| (space.clone(), votes.clone()))
        .bench_local_values(|(mut space, votes)| {
            for vote in votes {
                space.append(vote, time).expect("vote accepted");
            }
            space
        });
}

/// Checking the signature of one response-sized message (key already
/// decoded): strict encodings, the cofactored equation.
#[divan::bench(name = "ed25519::verify")]
fn verify(bencher: Bencher) {
    let key = Keypair::from_seed(&[7; 32]);
    let message = SignedMessage::sign(
        MessageType::Response,
        json!({"space": "bench", "created_at": T0, "proposal": Digest::of(b"p"), "stance": "endorse",
               "confidence": "0.8", "reasoning": "checked"}),
        &key,
    );
    bencher.bench(|| black_box(&message).check_signature().is_ok());
}

/// Checking `n` response-sized messages from different signers: one at a
/// time, and as one batch (`verify_batch`, the sequencer's path). Both
/// include decoding each signature (`prepare`). Per-message cost is the
/// median divided by `n`.
#[divan::bench(name = "ed25519::check", args = [1, 16, 32, 64])]
fn check_signatures(bencher: Bencher, n: usize) {
    let messages = signed_responses(n);
    bencher
        .counter(ItemsCount::new(n))
        .with_inputs(|| messages.clone())
        .bench_local_values(|messages| {
            messages
                .into_iter()
                .map(|m| m.verify().is_ok())
                .filter(|ok| *ok)
                .count()
        });
}

#[divan::bench(name = "ed25519::check_batch", args = [1, 16, 32, 64])]
fn check_batch(bencher: Bencher, n: usize) {
    let messages = signed_responses(n);
    bencher
        .counter(ItemsCount::new(n))
        .with_inputs(|| messages.clone())
        .bench_local_values(|messages| {
            let prepared = messages.into_iter().map(|m| m.prepare().unwrap()).collect();
            synod_core::wire::verify_batch(prepared)
                .iter()
                .filter(|r| r.is_ok())
                .count()
        });
}

fn signed_responses(n: usize) -> Vec<SignedMessage> {
    (0..n)
        .map(|i| {
            let key = Keypair::from_seed(&Digest::of(format!("signer {i}").as_bytes()).0);
            SignedMessage::sign(
                MessageType::Response,
                json!({"space": "bench", "created_at": T0, "proposal": Digest::of(b"p"), "stance": "endorse",
                       "confidence": "0.8", "reasoning": "checked"}),
                &key,
            )
        })
        .collect()
}
