//! The population, the stream, and the aggregators compared on it.

use synod_core::fixed::{Authority, Confidence, Influence, Ratio, Score, Trust};
use synod_core::logodds::EVIDENCE_DECIMALS;
use synod_core::policy::{self, Policy, Stakes};
use synod_core::tally::{self, Stance, Tally, Verdict, resolve};
use synod_core::trust;
use synod_core::wire::Digest;

use crate::{Adversary, Config, Counts, Decision, Rng, Run, Vote};

/// The aggregators, in report order. `oracle` is the ceiling. `synod` is the
/// protocol core's default (log-odds weighting, docs/PROTOCOL.md §5.0.1);
/// `synod-linear` the core's linear rule, the default before the ablation
/// chose log-odds ([`Weighting::CANDIDATE`]).
pub const AGGREGATORS: [&str; 10] = [
    "majority",
    "average-confidence",
    "fixed-weights",
    "synod-linear",
    "synod",
    "log-odds",
    "beta-logit",
    "hedge",
    "logistic",
    "oracle",
];

/// Learning rate of Fixed-Share Hedge on the Brier loss.
const HEDGE_RATE: f64 = 2.0;
/// Fixed-Share mixing: the share of weight spread back to everyone.
const HEDGE_SHARE: f64 = 0.01;
/// Step size of the online logistic regression.
const LOGISTIC_RATE: f64 = 0.05;

/// Evidence cap for one vote in the log-odds rules (a confidence of
/// 1 − 1e-6 would otherwise count as 14 votes).
const MAX_LOGIT: f64 = 5.0;
/// Forgetting factor of the Beta learner.
const BETA_FORGETTING: f64 = 0.98;

fn micros(x: f64) -> u32 {
    (x.clamp(0.0, 1.0) * 1e6).round() as u32
}

/// The core's exact log-odds (`synod_core::logodds`) of a confidence, as it
/// would be stated on the wire (in millionths).
fn exact_log_odds(confidence: f64) -> f64 {
    let exact = synod_core::logodds::logit(Confidence::from_micros(micros(confidence)));
    exact.0 as f64 / 1e12
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

/// The core policy's `approve_confidence` and `reject_confidence` that put
/// Chow's rule ([`Learners::chow`]) for the run's prior and costs into
/// evidence thresholds: approve when the evidence reaches
/// `max(ln((k − c)/c), ln k) − logit(prior)`, reject when it falls to
/// `ln(c/(1 − c)) − logit(prior)`; each as the confidence whose log-odds it
/// is, in millionths, kept above one half as the protocol requires (the
/// evidence for nothing never decides). At the defaults (prior 0.5, c = 0.2,
/// k = 1) both are 0.8: the medium-stakes defaults.
pub fn decision_confidences(config: &Config) -> (Ratio, Ratio) {
    let (c, k) = (config.escalation_cost, config.false_approval_cost);
    let prior = logit(config.prior_good);
    let approve = ((k - c) / c).ln().max(k.ln()) - prior;
    let reject = -((c / (1.0 - c)).ln() - prior);
    let at = |evidence: f64| Ratio::from_micros(micros(sigmoid(evidence)).max(500_001));
    (at(approve), at(reject))
}

/// A log-odds weighting of votes, for the ablation: evidence
/// `± a·(2t)^p·clamp(logit(c), ±cap)`, the log-odds computed by the core's
/// exact algorithm (`synod_core::logodds`), with `a` the declared authority (or 1),
/// `t` the trust the core's rule learned (`2t`, so the prior 0.5 counts a
/// vote at face value) and `p` the trust power; decided by Chow's rule.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Weighting {
    /// Largest logit one vote can contribute (`ln(c/(1−c))` of the
    /// confidence `c` at which it saturates).
    pub cap: f64,
    /// Power of the trust factor.
    pub trust_power: i32,
    /// Whether declared authority scales the vote.
    pub authority: bool,
    /// Trust above this adds no weight: the factor is `a·(2·min(t, cap))^p`,
    /// a per-agent weight cap (1 for none).
    pub trust_cap: f64,
    /// Whether each vote is also scaled by a learned per-agent calibration
    /// coefficient `κ ∈ [0, 2]` (one gradient step on the log loss of this
    /// weighting's own posterior per outcome, from 1): what online logistic
    /// regression learns, bounded, on top of trust.
    pub calibrated: bool,
}

impl Weighting {
    /// The best all-round candidate of the ablation (docs/DECISION-QUALITY.md),
    /// the core's default: confidence saturating at 0.8, trust squared and
    /// capped at 0.65, authority kept.
    pub const CANDIDATE: Weighting = Weighting {
        cap: 1.386_294_361_119_890_6, // ln 4: confidence 0.8
        trust_power: 2,
        authority: true,
        trust_cap: 0.65,
        calibrated: false,
    };

    /// A short label: `logit ≤c, t^p, a` (or `no a`).
    pub fn label(&self) -> String {
        let saturates = sigmoid(self.cap);
        let mut capped = if self.trust_cap < 1.0 {
            format!(", trust ≤ {}", self.trust_cap)
        } else {
            String::new()
        };
        if self.calibrated {
            capped.push_str(", calibrated");
        }
        format!(
            "logit cap {saturates:.2}, (2t)^{}, {}{capped}",
            self.trust_power,
            if self.authority {
                "authority"
            } else {
                "no authority"
            }
        )
    }
}

struct Agent {
    /// Evidence strength per domain (honest behaviour).
    mu: Vec<f64>,
    /// Declared authority per domain.
    authority: Vec<f64>,
    overconfident: bool,
    adversary: Option<Adversary>,
}

fn population(config: &Config, rng: &mut Rng) -> Vec<Agent> {
    let adversaries = (config.agents as f64 * config.adversary_share).round() as usize;
    (0..config.agents)
        .map(|i| {
            let mu: Vec<f64> = (0..config.domains)
                .map(|_| rng.uniform(0.05, 1.5))
                .collect();
            // Declared authority: the true strength, scaled to [0, 1], plus noise.
            let authority = mu
                .iter()
                .map(|m| (m / 1.5 + 0.1 * rng.normal()).clamp(0.05, 1.0))
                .collect();
            Agent {
                mu,
                authority,
                overconfident: rng.unit() < config.overconfident_share,
                adversary: (i < adversaries).then_some(config.adversary),
            }
        })
        .collect()
}

/// An honest vote with evidence strength `mu`: (endorse, confidence, λ).
fn honest_vote(rng: &mut Rng, good: bool, mu: f64, overconfident: bool) -> (bool, f64, f64) {
    let mean = if good { mu } else { -mu };
    let lambda = mean + (2.0 * mu).sqrt() * rng.normal();
    let scale = if overconfident { 2.0 } else { 1.0 };
    (
        lambda > 0.0,
        sigmoid(scale * lambda.abs()).min(0.999_999),
        lambda,
    )
}

/// The aggregators' learned state.
struct Learners {
    /// synod's trust per agent per domain, as the core keeps it.
    trust: Vec<Vec<Trust>>,
    /// Whether an identity created after the start has had an outcome in a
    /// domain (until then it is a newcomer there); founders are never
    /// newcomers.
    scored: Vec<Vec<bool>>,
    founders: usize,
    /// The core's newcomer cap.
    newcomer_cap: Ratio,
    /// Beta counts (right, wrong) with forgetting, per agent per domain.
    beta: Vec<Vec<(f64, f64)>>,
    /// Fixed-Share Hedge weights, per agent per domain.
    hedge: Vec<Vec<f64>>,
    /// Logistic-regression coefficients on `v · logit(c)`, per agent per domain.
    theta: Vec<Vec<f64>>,
    /// Each calibrated weighting of the run (`Config::weightings`) with its
    /// calibration coefficients, per agent per domain.
    kappa: Vec<(Weighting, Vec<Vec<f64>>)>,
    rate: Ratio,
    /// The core's linear rule at medium stakes.
    linear: Policy,
    /// The core's default, log-odds, with thresholds from the prior and
    /// costs by Chow's rule ([`decision_confidences`]).
    log_odds: Policy,
    domains: usize,
    prior: Trust,
    /// `logit(P(good))`.
    prior_log_odds: f64,
    /// `k`: a false approval's cost against a false rejection's.
    false_approval_cost: f64,
    /// `c`: an escalation's cost.
    escalation_cost: f64,
}

impl Learners {
    fn new(config: &Config) -> Learners {
        // The founding population starts at a closed space's prior; only
        // identities created later start at `new_identity_trust`.
        let prior = Trust::from_micros(micros(config.new_identity_trust));
        Learners {
            trust: vec![vec![Trust::from_micros(500_000); config.domains]; config.agents],
            scored: vec![vec![true; config.domains]; config.agents],
            founders: config.agents,
            newcomer_cap: Ratio::from_micros(micros(config.newcomer_cap)),
            beta: vec![vec![(0.0, 0.0); config.domains]; config.agents],
            hedge: vec![vec![1.0; config.domains]; config.agents],
            theta: vec![vec![1.0; config.domains]; config.agents],
            kappa: config
                .weightings
                .iter()
                .filter(|w| w.calibrated)
                .map(|w| (*w, vec![vec![1.0; config.domains]; config.agents]))
                .collect(),
            domains: config.domains,
            prior,
            prior_log_odds: logit(config.prior_good),
            false_approval_cost: config.false_approval_cost,
            escalation_cost: config.escalation_cost,
            rate: Ratio::from_micros(50_000),
            linear: Policy {
                weighting: policy::Weighting::Linear,
                proposer_counts: false,
                ..Policy::default_for(Stakes::Medium)
            },
            log_odds: {
                let (approve, reject) = decision_confidences(config);
                Policy {
                    weighting: policy::Weighting::LogOdds,
                    approve_confidence: approve,
                    reject_confidence: reject,
                    proposer_counts: false,
                    ..Policy::default_for(Stakes::Medium)
                }
            },
        }
    }

    /// A new identity with no history: returns its index.
    fn new_identity(&mut self) -> usize {
        self.trust.push(vec![self.prior; self.domains]);
        self.scored.push(vec![false; self.domains]);
        self.beta.push(vec![(0.0, 0.0); self.domains]);
        // Hedge weights are kept at mean 1 within each committee: a new
        // identity starts at the average scaled by the starting trust (1 for
        // a closed space's 0.5).
        let start = 2.0 * f64::from(self.prior.micros()) / 1e6;
        self.hedge.push(vec![start; self.domains]);
        self.theta.push(vec![1.0; self.domains]);
        for (_, table) in &mut self.kappa {
            table.push(vec![1.0; self.domains]);
        }
        self.trust.len() - 1
    }

    /// The decision, and the aggregator's probability that the action is
    /// good (for the Brier score and the risk–coverage curve).
    fn decide(&self, name: &str, votes: &[Vote], domain: usize, oracle: f64) -> (Decision, f64) {
        let chow = |evidence: f64| self.chow(evidence);
        let sign = |v: &Vote| if v.endorse { 1.0 } else { -1.0 };
        let forecast = |v: &Vote| {
            if v.endorse {
                v.confidence
            } else {
                1.0 - v.confidence
            }
        };
        let n = votes.len().max(1) as f64;
        match name {
            "majority" => {
                let net: i64 = votes.iter().map(|v| if v.endorse { 1 } else { -1 }).sum();
                let p = votes.iter().filter(|v| v.endorse).count() as f64 / n;
                let decision = match net.cmp(&0) {
                    std::cmp::Ordering::Greater => Decision::Approve,
                    std::cmp::Ordering::Less => Decision::Reject,
                    std::cmp::Ordering::Equal => Decision::Escalate,
                };
                (decision, p)
            }
            "average-confidence" => {
                let p = votes.iter().map(forecast).sum::<f64>() / n;
                let decision = if p >= 0.6 {
                    Decision::Approve
                } else if p <= 0.4 {
                    Decision::Reject
                } else {
                    Decision::Escalate
                };
                (decision, p)
            }
            "fixed-weights" => self.core(&self.linear, votes, domain, false),
            "synod-linear" => self.core(&self.linear, votes, domain, true),
            "synod" => self.core(&self.log_odds, votes, domain, true),
            "log-odds" => chow(
                votes
                    .iter()
                    .map(|v| sign(v) * logit(v.confidence).min(MAX_LOGIT))
                    .sum(),
            ),
            "beta-logit" => chow(
                votes
                    .iter()
                    .map(|v| {
                        let (r, w) = self.beta[v.agent][domain];
                        sign(v) * logit((r + 1.0) / (r + w + 2.0)).clamp(0.0, MAX_LOGIT)
                    })
                    .sum(),
            ),
            "hedge" => {
                // The weighted mean forecast; Chow's rule on it as a posterior.
                let total: f64 = votes.iter().map(|v| self.hedge[v.agent][domain]).sum();
                let p = if total > 0.0 {
                    votes
                        .iter()
                        .map(|v| self.hedge[v.agent][domain] * forecast(v))
                        .sum::<f64>()
                        / total
                } else {
                    0.5
                };
                chow(logit(p))
            }
            "logistic" => chow(
                votes
                    .iter()
                    .map(|v| {
                        self.theta[v.agent][domain] * sign(v) * logit(v.confidence).min(MAX_LOGIT)
                    })
                    .sum(),
            ),
            "oracle" => chow(oracle),
            _ => unreachable!("unknown aggregator {name}"),
        }
    }

    /// Chow's rule on log-odds `evidence`, with the prior and the costs: on
    /// the posterior `p` (prior log-odds plus evidence), the cheapest of
    /// approving (`k·(1 − p)`), rejecting (`p`) and escalating (`c`),
    /// compared in log-odds so that `k = 1` and prior 0.5 give exactly
    /// `|evidence| ≥ ln((1 − c) / c)`. Returns the posterior too.
    fn chow(&self, evidence: f64) -> (Decision, f64) {
        let (c, k) = (self.escalation_cost, self.false_approval_cost);
        let posterior = evidence + self.prior_log_odds;
        let decision = if posterior >= ((k - c) / c).ln().max(k.ln()) {
            Decision::Approve
        } else if posterior <= (c / (1.0 - c)).ln() && posterior < k.ln() {
            Decision::Reject
        } else {
            Decision::Escalate
        };
        (decision, sigmoid(posterior))
    }

    /// The evidence of `votes` under a log-odds `weighting`, on the trust the
    /// core's rule learned.
    fn logit_evidence(&self, weighting: Weighting, votes: &[Vote], domain: usize) -> f64 {
        votes
            .iter()
            .map(|v| {
                let t = 2.0
                    * (f64::from(self.trust[v.agent][domain].micros()) / 1e6)
                        .min(weighting.trust_cap);
                let a = if weighting.authority {
                    v.authority
                } else {
                    1.0
                };
                let sign = if v.endorse { 1.0 } else { -1.0 };
                let l = v.log_odds.clamp(-weighting.cap, weighting.cap);
                let kappa = self
                    .kappa
                    .iter()
                    .find(|(w, _)| weighting.calibrated && *w == weighting)
                    .map_or(1.0, |(_, table)| table[v.agent][domain]);
                sign * a * t.powi(weighting.trust_power) * l * kappa
            })
            .sum()
    }

    /// The protocol core's rule under `policy`: exact tally and ordered
    /// checks, with trust learned (synod) or frozen at 1 (fixed weights).
    fn core(
        &self,
        policy: &Policy,
        votes: &[Vote],
        domain: usize,
        learned: bool,
    ) -> (Decision, f64) {
        let trust = |v: &Vote| {
            if learned {
                self.trust[v.agent][domain]
            } else {
                Trust::ONE
            }
        };
        // The committee as the core freezes it: newcomers held to the cap.
        let mut members: Vec<(Authority, Trust)> = votes
            .iter()
            .map(|v| (Authority::from_micros(micros(v.authority)), trust(v)))
            .collect();
        let newcomer: Vec<bool> = votes
            .iter()
            .map(|v| v.agent >= self.founders && !self.scored[v.agent][domain])
            .collect();
        tally::cap_share(self.newcomer_cap, policy, &mut members, &newcomer);
        let potential: u128 = members
            .iter()
            .map(|&(a, t)| u128::from(Influence::of(a, t).0))
            .sum();
        let mut tally = Tally::new(potential);
        for (v, &(authority, trust)) in votes.iter().zip(&members) {
            let stance = if v.endorse {
                Stance::Endorse
            } else {
                Stance::Challenge
            };
            let confidence = Confidence::from_micros(micros(v.confidence));
            tally.add(policy, stance, authority, trust, confidence);
        }
        let decision = match resolve(policy, &tally) {
            Verdict::Approved => Decision::Approve,
            Verdict::Rejected => Decision::Reject,
            Verdict::Escalated(_) => Decision::Escalate,
        };
        let p = match policy.weighting {
            // The weighted share of endorsement, as the consensus probability.
            policy::Weighting::Linear => {
                let total = tally.total();
                if total == 0 {
                    0.5
                } else {
                    tally.endorse as f64 / total as f64
                }
            }
            // The posterior: the prior's log-odds plus the evidence.
            policy::Weighting::LogOdds => {
                let net = tally.endorse as f64 - tally.challenge as f64;
                sigmoid(self.prior_log_odds + net / 10f64.powi(EVIDENCE_DECIMALS as i32))
            }
        };
        (decision, p)
    }

    fn learn(&mut self, votes: &[Vote], domain: usize, good: bool) {
        for v in votes {
            self.scored[v.agent][domain] = true;
        }
        let outcome = if good { Score::ONE } else { Score::ZERO };
        let y = if good { 1.0 } else { 0.0 };
        // Hedge: multiplicative update on each member's Brier loss, then
        // Fixed Share over the committee, so no weight stays dead for ever.
        for v in votes {
            let f = if v.endorse {
                v.confidence
            } else {
                1.0 - v.confidence
            };
            self.hedge[v.agent][domain] *= (-HEDGE_RATE * (f - y) * (f - y)).exp();
        }
        let mean = votes
            .iter()
            .map(|v| self.hedge[v.agent][domain])
            .sum::<f64>()
            / votes.len().max(1) as f64;
        for v in votes {
            let w = &mut self.hedge[v.agent][domain];
            *w = (1.0 - HEDGE_SHARE) * *w + HEDGE_SHARE * mean;
        }
        // Renormalize the committee to mean 1, so that weights stay
        // comparable with those of agents who were not on it.
        let mean = votes
            .iter()
            .map(|v| self.hedge[v.agent][domain])
            .sum::<f64>()
            / votes.len().max(1) as f64;
        if mean > 0.0 {
            for v in votes {
                self.hedge[v.agent][domain] /= mean;
            }
        }
        // Logistic regression: one gradient step on the log loss.
        let x =
            |v: &Vote| (if v.endorse { 1.0 } else { -1.0 }) * logit(v.confidence).min(MAX_LOGIT);
        let z: f64 = votes
            .iter()
            .map(|v| self.theta[v.agent][domain] * x(v))
            .sum();
        let error = y - sigmoid(z);
        for v in votes {
            self.theta[v.agent][domain] += LOGISTIC_RATE * error * x(v);
        }
        // Calibrated weightings: the same step on each κ, through that
        // weighting's own evidence (trust as it stands before this outcome).
        for c in 0..self.kappa.len() {
            let weighting = self.kappa[c].0;
            let z = self.logit_evidence(weighting, votes, domain) + self.prior_log_odds;
            let error = y - sigmoid(z);
            let unscaled = Weighting {
                calibrated: false,
                ..weighting
            };
            for v in votes {
                let x = self.logit_evidence(unscaled, std::slice::from_ref(v), domain);
                let k = &mut self.kappa[c].1[v.agent][domain];
                *k = (*k + LOGISTIC_RATE * error * x).clamp(0.0, 2.0);
            }
        }
        for v in votes {
            let stance = if v.endorse {
                Stance::Endorse
            } else {
                Stance::Challenge
            };
            let forecast = trust::forecast(stance, Confidence::from_micros(micros(v.confidence)))
                .expect("endorse and challenge forecast");
            let t = &mut self.trust[v.agent][domain];
            *t = trust::update(*t, forecast, outcome, self.rate);
            let (r, w) = &mut self.beta[v.agent][domain];
            *r *= BETA_FORGETTING;
            *w *= BETA_FORGETTING;
            if v.endorse == good {
                *r += 1.0;
            } else {
                *w += 1.0;
            }
        }
    }
}

fn score(counts: &mut Counts, decision: Decision, good: bool) {
    match decision {
        Decision::Escalate => counts.escalated += 1,
        Decision::Approve if good => counts.right += 1,
        Decision::Reject if !good => counts.right += 1,
        Decision::Approve => {
            counts.wrong += 1;
            counts.false_approvals += 1;
        }
        Decision::Reject => counts.wrong += 1,
    }
}

/// Area under the risk–coverage curve: decide every proposal by the side of
/// 0.5 its probability is on, take them most confident first, and average the
/// error rate among the first k over every k. Lower is better.
fn aurc(forecasts: &mut [(f64, bool)]) -> (f64, Vec<f64>) {
    forecasts.sort_by(|a, b| (b.0 - 0.5).abs().total_cmp(&(a.0 - 0.5).abs()));
    let n = forecasts.len().max(1);
    let (mut errors, mut area) = (0.0, 0.0);
    let mut curve = Vec::with_capacity(20);
    for (k, (p, good)) in forecasts.iter().enumerate() {
        if (*p > 0.5) != *good {
            errors += 1.0;
        }
        area += errors / (k + 1) as f64;
        // The risk at coverage 5 %, 10 %, …, 100 %.
        if (k + 1) * 20 >= (curve.len() + 1) * n {
            curve.push(errors / (k + 1) as f64);
        }
    }
    (area / n as f64, curve)
}

pub(crate) fn simulate(config: &Config, seed: u64) -> Run {
    let mut rng = Rng::new(seed);
    let agents = population(config, &mut rng);
    let mut learners = Learners::new(config);
    let names: Vec<String> = AGGREGATORS
        .iter()
        .map(|n| n.to_string())
        .chain(config.weightings.iter().map(Weighting::label))
        .collect();
    let mut counts = vec![Counts::default(); names.len()];
    // Each agent's current identity; whitewashers and sybils change theirs.
    let mut identity: Vec<usize> = (0..config.agents).collect();
    let mut forecasts: Vec<Vec<(f64, bool)>> =
        vec![Vec::with_capacity(config.proposals); names.len()];
    let mut pending = std::collections::VecDeque::new();
    let tracing = config.adversary == Adversary::Sleeper && config.adversary_share > 0.0;
    let mut sleepers = tracing.then(|| crate::SleeperTrace {
        turn: config.sleeper_turns_at,
        series: Vec::new(),
        recovery: None,
    });
    for t in 0..config.proposals {
        if let Some(trace) = sleepers.as_mut()
            && t % 50 == 0
        {
            let mean = |sleeper: bool| {
                let (mut sum, mut n) = (0.0_f64, 0.0_f64);
                for (i, a) in agents.iter().enumerate() {
                    if (a.adversary == Some(Adversary::Sleeper)) == sleeper {
                        for t in &learners.trust[identity[i]] {
                            sum += f64::from(t.micros()) / 1e6;
                            n += 1.0;
                        }
                    }
                }
                sum / n.max(1.0)
            };
            let (s, h) = (mean(true), mean(false));
            trace.series.push((t, s, h));
            if t >= trace.turn && trace.recovery.is_none() && s < h / 2.0 {
                trace.recovery = Some(t - trace.turn);
            }
        }
        let domain = rng.below(config.domains);
        let good = rng.unit() < config.prior_good;
        let committee = if config.stake_committee {
            // The core's verifiable lottery, stake = influence in the domain,
            // seeded from the run's own stream.
            let stakes: Vec<u128> = (0..config.agents)
                .map(|i| {
                    let claimed = match (agents[i].adversary, config.adversary_authority) {
                        (Some(_), Some(claimed)) => claimed,
                        _ => agents[i].authority[domain],
                    };
                    let a = Authority::from_micros(micros(claimed));
                    u128::from(Influence::of(a, learners.trust[identity[i]][domain]).0)
                })
                .collect();
            let mut seed = [0u8; 32];
            for chunk in seed.chunks_mut(8) {
                chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
            }
            synod_core::lottery::draw(&Digest(seed), &stakes, config.committee)
        } else {
            rng.sample(config.agents, config.committee)
        };
        // Honest evidence first (the strategic liar looks at it).
        let honest: Vec<(bool, f64, f64)> = committee
            .iter()
            .map(|&i| {
                let a = &agents[i];
                let mu = match a.adversary {
                    Some(Adversary::Sleeper) => 2.0,
                    Some(Adversary::StrategicLiar) => 1.0,
                    _ => a.mu[domain],
                };
                honest_vote(&mut rng, good, mu, a.overconfident)
            })
            .collect();
        let net_honest: i64 = honest.iter().map(|(e, ..)| if *e { 1 } else { -1 }).sum();
        let mut oracle = 0.0;
        let mut votes = Vec::with_capacity(committee.len());
        let mut clean = Vec::with_capacity(committee.len());
        for (k, &i) in committee.iter().enumerate() {
            let a = &agents[i];
            if a.adversary == Some(Adversary::SybilFlood) {
                identity[i] = learners.new_identity();
            }
            let (endorse, confidence, lambda) = honest[k];
            let lie = |conf: f64| (!good, conf);
            let (endorse, confidence) = match a.adversary {
                None => {
                    oracle += lambda;
                    (endorse, confidence)
                }
                Some(Adversary::AlwaysWrong) => lie(0.9),
                Some(Adversary::ConfidentNoise) => (rng.unit() < 0.5, rng.uniform(0.9, 0.999_999)),
                Some(Adversary::ColludingBloc) if domain == 0 => lie(0.95),
                Some(Adversary::ColludingBloc) => (endorse, confidence),
                Some(Adversary::StrategicLiar) => {
                    // Pivotal: the others' unweighted margin is within one.
                    let others = net_honest - if endorse { 1 } else { -1 };
                    if others.abs() <= 1 {
                        lie(0.99)
                    } else {
                        (endorse, confidence)
                    }
                }
                Some(Adversary::Sleeper) if t >= config.sleeper_turns_at => lie(0.99),
                Some(Adversary::Sleeper) => (endorse, confidence),
                Some(Adversary::Whitewasher | Adversary::SybilFlood) => lie(0.9),
            };
            let vote = Vote {
                agent: identity[i],
                endorse,
                confidence,
                authority: match (a.adversary, config.adversary_authority) {
                    (Some(_), Some(claimed)) => claimed,
                    _ => a.authority[domain],
                },
                log_odds: exact_log_odds(confidence),
            };
            if a.adversary.is_none() {
                clean.push(vote);
            }
            votes.push(vote);
        }
        for n in 0..names.len() {
            let decide = |votes: &[Vote]| match AGGREGATORS.get(n) {
                Some(name) => learners.decide(name, votes, domain, oracle),
                None => {
                    let w = config.weightings[n - AGGREGATORS.len()];
                    learners.chow(learners.logit_evidence(w, votes, domain))
                }
            };
            let (decision, p) = decide(&votes);
            score(&mut counts[n], decision, good);
            let y = if good { 1.0 } else { 0.0 };
            counts[n].brier += (p - y) * (p - y);
            let bin = &mut counts[n].calibration[((p * 10.0) as usize).min(9)];
            bin.0 += p;
            bin.1 += y;
            bin.2 += 1;
            forecasts[n].push((p, good));
            if decision != Decision::Escalate && clean.len() < votes.len() {
                let (without, _) = decide(&clean);
                if without != decision {
                    counts[n].swung += 1;
                }
            }
        }
        // The outcome is revealed `outcome_delay` proposals later.
        pending.push_back((votes, domain, good));
        while pending.len() > config.outcome_delay {
            let (votes, domain, good) = pending.pop_front().expect("non-empty");
            learners.learn(&votes, domain, good);
        }
        // A whitewasher whose trust has sunk below where a new identity would
        // start starts over under a new name.
        let restart_below = Trust::from_micros(micros(config.new_identity_trust * 0.6));
        for &i in &committee {
            if agents[i].adversary == Some(Adversary::Whitewasher)
                && learners.trust[identity[i]][domain] < restart_below
            {
                identity[i] = learners.new_identity();
            }
        }
    }
    for (n, f) in forecasts.iter_mut().enumerate() {
        counts[n].brier /= config.proposals.max(1) as f64;
        (counts[n].aurc, counts[n].risk_curve) = aurc(f);
    }
    Run {
        seed,
        results: names.into_iter().zip(counts).collect(),
        sleepers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibrated_agents_are_calibrated() {
        // The model's promise: a vote at confidence c is right with
        // probability about c.
        let mut rng = Rng::new(7);
        let (mut said, mut right, mut n) = (0.0, 0.0, 0.0);
        for _ in 0..200_000 {
            let good = rng.unit() < 0.5;
            let (endorse, c, _) = honest_vote(&mut rng, good, 0.6, false);
            if (0.7..0.75).contains(&c) {
                said += c;
                right += f64::from(u8::from(endorse == good));
                n += 1.0;
            }
        }
        assert!(
            (right / n - said / n).abs() < 0.01,
            "said {} right {}",
            said / n,
            right / n
        );
    }
}
