//! A deterministic agent-population simulator and the Oracle-Gap benchmark.
//!
//! Synthetic agents with a hidden competence per domain vote on a stream of
//! proposals with a hidden truth. Several aggregators decide on the same
//! votes; outcomes are revealed afterwards and the learning aggregators update
//! on them. synod's own aggregator goes through the protocol core: the exact
//! tally, the ordered resolution rule and the trust update of
//! `synod_core::{tally, trust}` — the functions `Space` itself calls — with
//! fixed-point inputs, so the benchmark measures the rule the node runs.
//!
//! The model follows `shared/research/decision-quality.md`: honest agent `i`
//! in domain `d` draws evidence `λ | Y ~ Normal(±μ, 2μ)`, votes `sign(λ)` with
//! confidence `sigmoid(|λ|)` (exactly calibrated; some agents report
//! `sigmoid(2|λ|)`, over-confident). The oracle knows which agents are honest
//! and sums their evidence, `Λ = Σ λ`, which is the Bayes-optimal vote, and
//! escalates by Chow's rule when `|Λ| < ln((1 − c) / c)`.
//!
//! Randomness comes from a seeded SplitMix64 generator: the same seed gives
//! the same stream. The model's `ln`, `exp` and `cos` come from the
//! platform's maths library, so the last digits of a result may differ
//! between platforms; on one platform a seed always gives the same numbers.

#![warn(missing_docs)]

mod aggregators;
mod rng;

use serde::{Deserialize, Serialize};

pub use aggregators::{AGGREGATORS, Weighting, decision_confidences};
pub use rng::Rng;

/// What kind of adversary the dishonest share of the population is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Adversary {
    /// Always votes against the truth, at confidence 0.9.
    AlwaysWrong,
    /// Votes at random, at confidence 0.9 to 1.
    ConfidentNoise,
    /// All lie together on one target domain (honest elsewhere), at 0.95.
    ColludingBloc,
    /// Votes against the truth at 0.99, but only when its vote could swing an
    /// unweighted majority of the committee; otherwise honest.
    StrategicLiar,
    /// Honest and strong (`μ = 2`) until a set time, then always wrong at 0.99.
    Sleeper,
    /// Always wrong at 0.9, and re-registers under a new identity whenever
    /// synod's trust in it falls below 0.3.
    Whitewasher,
    /// Always wrong at 0.9, with a fresh identity every time it votes.
    SybilFlood,
}

impl Adversary {
    /// Every kind, for the benchmark.
    pub const ALL: [Adversary; 7] = [
        Adversary::AlwaysWrong,
        Adversary::ConfidentNoise,
        Adversary::ColludingBloc,
        Adversary::StrategicLiar,
        Adversary::Sleeper,
        Adversary::Whitewasher,
        Adversary::SybilFlood,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Adversary::AlwaysWrong => "always-wrong",
            Adversary::ConfidentNoise => "confident-noise",
            Adversary::ColludingBloc => "colluding-bloc",
            Adversary::StrategicLiar => "strategic-liar",
            Adversary::Sleeper => "sleeper",
            Adversary::Whitewasher => "whitewasher",
            Adversary::SybilFlood => "sybil-flood",
        }
    }

    /// Parses a command-line name.
    pub fn parse(name: &str) -> Option<Adversary> {
        Adversary::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// A benchmark configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// Agents in the population.
    pub agents: usize,
    /// Domains.
    pub domains: usize,
    /// Proposals in the stream.
    pub proposals: usize,
    /// Eligible agents per proposal (drawn from its domain's population).
    pub committee: usize,
    /// Share of the population that is adversarial, in [0, 1].
    pub adversary_share: f64,
    /// What the adversaries do.
    pub adversary: Adversary,
    /// Share of honest agents that report over-confident confidences.
    pub overconfident_share: f64,
    /// Cost of an escalation relative to a wrong automatic decision (`c`).
    pub escalation_cost: f64,
    /// Probability that a proposed action is good.
    pub prior_good: f64,
    /// Cost of a false approval relative to a false rejection (`k`).
    pub false_approval_cost: f64,
    /// When sleepers turn (proposal index).
    pub sleeper_turns_at: usize,
    /// Starting trust of every identity (0.5 is a closed space's prior; an
    /// open space gives new identities less).
    pub new_identity_trust: f64,
    /// Outcomes are revealed this many proposals after the decision.
    pub outcome_delay: usize,
    /// Whether each committee is drawn by the core's stake-weighted lottery
    /// (`synod_core::lottery`, stake = authority × the core's learned trust
    /// in the domain) instead of uniformly.
    pub stake_committee: bool,
    /// The core's newcomer cap (`open_newcomer_cap`): identities created
    /// after the start hold at most this share of a committee's influence
    /// and weight until they have an outcome in the domain. 1: off (a
    /// closed space, where nobody creates identities at will).
    pub newcomer_cap: f64,
    /// The authority adversaries claim in every domain (an open space takes
    /// declared authority at its word); `None`: like honest agents, their
    /// real skill plus noise.
    pub adversary_authority: Option<f64>,
    /// Extra log-odds weightings to compare (the ablation), reported after
    /// [`AGGREGATORS`].
    pub weightings: Vec<Weighting>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            agents: 50,
            domains: 5,
            proposals: 5_000,
            committee: 11,
            adversary_share: 0.0,
            adversary: Adversary::AlwaysWrong,
            overconfident_share: 0.15,
            escalation_cost: 0.2,
            prior_good: 0.5,
            false_approval_cost: 1.0,
            sleeper_turns_at: 2_000,
            new_identity_trust: 0.5,
            outcome_delay: 0,
            newcomer_cap: 1.0,
            stake_committee: false,
            adversary_authority: None,
            weightings: Vec::new(),
        }
    }
}

/// One vote as an aggregator sees it.
#[derive(Debug, Clone, Copy)]
pub struct Vote {
    /// The identity the vote came from (an agent may change identity).
    pub agent: usize,
    /// True for endorse, false for challenge.
    pub endorse: bool,
    /// Stated confidence in [0.5, 1).
    pub confidence: f64,
    /// The agent's declared authority in the proposal's domain, in (0, 1].
    pub authority: f64,
    /// `ln(c / (1 − c))` of the stated confidence in millionths, by the
    /// core's exact algorithm (computed once per vote).
    pub log_odds: f64,
}

/// What an aggregator decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Take the action.
    Approve,
    /// Do not.
    Reject,
    /// Ask a human.
    Escalate,
}

/// Counts for one aggregator over one run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Counts {
    /// Proposals decided automatically and rightly.
    pub right: u64,
    /// Proposals decided automatically and wrongly.
    pub wrong: u64,
    /// Of the wrong ones, approvals of a bad action.
    pub false_approvals: u64,
    /// Escalations.
    pub escalated: u64,
    /// Automatic decisions an adversary swung (the decision without the
    /// adversaries' votes would have been different).
    pub swung: u64,
    /// Mean Brier score of the aggregator's probability that the action is
    /// good (lower is better).
    pub brier: f64,
    /// Area under the risk–coverage curve (lower is better).
    pub aurc: f64,
    /// Calibration of the consensus probability `p`: for each tenth of
    /// [0, 1], the sum of `p`, the number of good actions, and the count.
    pub calibration: [(f64, f64, u64); 10],
    /// The risk–coverage curve: the error rate among the most confident
    /// `k` % of proposals, for `k` = 5, 10, …, 100.
    pub risk_curve: Vec<f64>,
}

impl Counts {
    fn total(&self) -> f64 {
        (self.right + self.wrong + self.escalated) as f64
    }

    /// Wrong automatic decisions over all proposals.
    pub fn error_rate(&self) -> f64 {
        self.wrong as f64 / self.total()
    }

    /// Escalations over all proposals.
    pub fn escalation_rate(&self) -> f64 {
        self.escalated as f64 / self.total()
    }

    /// Right over automatic decisions.
    pub fn accuracy(&self) -> f64 {
        let automatic = (self.right + self.wrong) as f64;
        if automatic == 0.0 {
            0.0
        } else {
            self.right as f64 / automatic
        }
    }

    /// False approvals over all proposals.
    pub fn false_approval_rate(&self) -> f64 {
        self.false_approvals as f64 / self.total()
    }

    /// `J = error rate + c × escalation rate`.
    pub fn cost(&self, c: f64) -> f64 {
        self.error_rate() + c * self.escalation_rate()
    }

    /// `J` when a false approval costs `k` times a false rejection:
    /// `(false rejections + k × false approvals) / N + c × escalation rate`.
    pub fn cost_weighted(&self, c: f64, k: f64) -> f64 {
        let false_rejections = (self.wrong - self.false_approvals) as f64;
        (false_rejections + k * self.false_approvals as f64) / self.total()
            + c * self.escalation_rate()
    }

    /// Expected calibration error of the consensus probability: the mean,
    /// weighted by count, of |mean `p` − share of good actions| over tenths
    /// (= Σ |Σp − good| / N).
    pub fn ece(&self) -> f64 {
        let total: u64 = self.calibration.iter().map(|b| b.2).sum();
        if total == 0 {
            return 0.0;
        }
        self.calibration
            .iter()
            .map(|(p, y, _)| (p - y).abs() / total as f64)
            .sum()
    }
}

/// The sleepers' trust against the honest agents', as the core's trust rule
/// learns it, when the adversaries are sleepers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SleeperTrace {
    /// The proposal at which the sleepers turn.
    pub turn: usize,
    /// Every 50 proposals: (proposal, sleepers' mean trust, honest agents'
    /// mean trust), over every domain.
    pub series: Vec<(usize, f64, f64)>,
    /// Proposals after the turn until the sleepers' mean trust fell below
    /// half the honest agents' (`None` if it never did).
    pub recovery: Option<usize>,
}

/// One run: the counts of every aggregator, by name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Run {
    /// The seed.
    pub seed: u64,
    /// Aggregator name and its counts, in [`AGGREGATORS`] order.
    pub results: Vec<(String, Counts)>,
    /// With sleepers: their trust over time.
    pub sleepers: Option<SleeperTrace>,
}

/// How long the core's trust took to put turned sleepers below half the
/// honest agents' trust, over the seeds where it did: (mean, ±95 %), and in
/// how many of the runs it did. `None` without sleepers.
pub fn sleeper_recovery(runs: &[Run]) -> Option<((f64, f64), usize, usize)> {
    let traces: Vec<&SleeperTrace> = runs.iter().filter_map(|r| r.sleepers.as_ref()).collect();
    if traces.is_empty() {
        return None;
    }
    let recovered: Vec<f64> = traces
        .iter()
        .filter_map(|t| t.recovery.map(|r| r as f64))
        .collect();
    Some((mean_ci(&recovered), recovered.len(), traces.len()))
}

/// Runs one seed.
pub fn run(config: &Config, seed: u64) -> Run {
    aggregators::simulate(config, seed)
}

/// Mean and half-width of a 95 % interval of `xs` (Student's t).
pub fn mean_ci(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    // Two-sided 97.5 % quantiles of Student's t for 1..=30 degrees of freedom.
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    let t = T.get(xs.len() - 2).copied().unwrap_or(1.96);
    (mean, t * (var / n).sqrt())
}

/// A summary row: an aggregator's metrics over seeds, as (mean, ±95 %).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// Aggregator.
    pub aggregator: String,
    /// Accuracy of automatic decisions.
    pub accuracy: (f64, f64),
    /// False approvals over all proposals.
    pub false_approval_rate: (f64, f64),
    /// Escalations over all proposals.
    pub escalation_rate: (f64, f64),
    /// `J = error + c × escalation`.
    pub cost: (f64, f64),
    /// `(J − J*) / (J_majority − J*)`, J* the oracle's.
    pub gap: (f64, f64),
    /// Share of automatic decisions the adversaries swung.
    pub swung: (f64, f64),
    /// Brier score of the consensus probability.
    pub brier: (f64, f64),
    /// Area under the risk–coverage curve.
    pub aurc: (f64, f64),
    /// Expected calibration error of the consensus probability.
    pub ece: (f64, f64),
}

/// Summarizes runs of the same configuration over seeds.
pub fn summarize(config: &Config, runs: &[Run]) -> Vec<Row> {
    let c = config.escalation_cost;
    let fa = config.false_approval_cost;
    let names: Vec<String> = runs[0].results.iter().map(|(n, _)| n.clone()).collect();
    let find = |run: &Run, name: &str| {
        run.results
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.clone())
            .expect("every run has every aggregator")
    };
    names
        .iter()
        .map(|name| {
            let per = |f: &dyn Fn(&Counts) -> f64| {
                mean_ci(&runs.iter().map(|r| f(&find(r, name))).collect::<Vec<_>>())
            };
            let gaps: Vec<f64> = runs
                .iter()
                .map(|r| {
                    let j = find(r, name).cost_weighted(c, fa);
                    let j_star = find(r, "oracle").cost_weighted(c, fa);
                    let j_maj = find(r, "majority").cost_weighted(c, fa);
                    if (j_maj - j_star).abs() < 1e-12 {
                        0.0
                    } else {
                        (j - j_star) / (j_maj - j_star)
                    }
                })
                .collect();
            Row {
                aggregator: name.clone(),
                accuracy: per(&|k| k.accuracy()),
                false_approval_rate: per(&|k| k.false_approval_rate()),
                escalation_rate: per(&|k| k.escalation_rate()),
                cost: per(&|k| k.cost_weighted(c, fa)),
                gap: mean_ci(&gaps),
                brier: per(&|k| k.brier),
                aurc: per(&|k| k.aurc),
                ece: per(&|k| k.ece()),
                swung: per(&|k| {
                    let automatic = (k.right + k.wrong) as f64;
                    if automatic == 0.0 {
                        0.0
                    } else {
                        k.swung as f64 / automatic
                    }
                }),
            }
        })
        .collect()
}

/// The column names of a summary row, in [`Row::cells`] order.
pub const COLUMNS: [&str; 10] = [
    "aggregator",
    "accuracy",
    "false approvals",
    "escalations",
    "J",
    "normalised gap",
    "swung by adversaries",
    "Brier",
    "AURC",
    "ECE",
];

impl Row {
    /// The row as text cells, each metric as `mean ± half-width`.
    pub fn cells(&self) -> Vec<String> {
        let f = |(m, h): (f64, f64)| format!("{m:.4} ± {h:.4}");
        vec![
            self.aggregator.clone(),
            f(self.accuracy),
            f(self.false_approval_rate),
            f(self.escalation_rate),
            f(self.cost),
            f(self.gap),
            f(self.swung),
            f(self.brier),
            f(self.aurc),
            f(self.ece),
        ]
    }
}

/// The summary as a markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = format!(
        "| {} |\n|{}\n",
        COLUMNS.join(" | "),
        "---|".repeat(COLUMNS.len())
    );
    for r in rows {
        out.push_str(&format!("| {} |\n", r.cells().join(" | ")));
    }
    out
}

/// The standard normal CDF (Abramowitz–Stegun 7.1.26; |error| < 1.5e-7).
pub fn phi(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs() / std::f64::consts::SQRT_2);
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-(x * x / 2.0)).exp();
    if x >= 0.0 {
        0.5 * (1.0 + y)
    } else {
        0.5 * (1.0 - y)
    }
}

/// A line chart as SVG: one series per name, x from `xs`, y in [0, y_max].
pub fn svg_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    xs: &[f64],
    series: &[(String, Vec<f64>)],
) -> String {
    const W: f64 = 640.0;
    const H: f64 = 400.0;
    const LEFT: f64 = 60.0;
    const RIGHT: f64 = 170.0;
    const TOP: f64 = 40.0;
    const BOTTOM: f64 = 50.0;
    const COLOURS: [&str; 8] = [
        "#888888", "#b07aa1", "#9c755f", "#e15759", "#f28e2b", "#76b7b2", "#4e79a7", "#59a14f",
    ];
    let x_max = xs.iter().cloned().fold(f64::MIN, f64::max).max(1e-9);
    let y_max = series
        .iter()
        .flat_map(|(_, ys)| ys.iter().cloned())
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.1;
    let px = |x: f64| LEFT + (W - LEFT - RIGHT) * x / x_max;
    let py = |y: f64| TOP + (H - TOP - BOTTOM) * (1.0 - y / y_max);
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="{W}" height="{H}" fill="white"/>
<text x="{}" y="22" font-size="15" text-anchor="middle">{title}</text>
<line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="black"/>
<text x="{}" y="{}" text-anchor="middle">{x_label}</text>
<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">{y_label}</text>
"#,
        (W - RIGHT + LEFT) / 2.0,
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM,
        H - BOTTOM,
        (W - RIGHT + LEFT) / 2.0,
        H - 12.0,
        (H - BOTTOM + TOP) / 2.0,
        (H - BOTTOM + TOP) / 2.0,
    );
    for i in 0..=4 {
        let y = y_max * i as f64 / 4.0;
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{y:.3}</text><line x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"#eee\"/>\n",
            LEFT - 6.0,
            py(y) + 4.0,
            py(y),
            W - RIGHT,
            py(y)
        ));
    }
    // At most about a dozen labels, each with no more digits than it needs.
    let every = xs.len().div_ceil(12).max(1);
    for x in xs.iter().step_by(every) {
        let label = format!("{x:.2}");
        let label = label.trim_end_matches('0').trim_end_matches('.');
        out.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{label}</text>\n",
            px(*x),
            H - BOTTOM + 16.0
        ));
    }
    for (n, (name, ys)) in series.iter().enumerate() {
        let colour = COLOURS[n % COLOURS.len()];
        let points: Vec<String> = xs
            .iter()
            .zip(ys)
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        out.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\n<text x=\"{}\" y=\"{}\" fill=\"{colour}\">{name}</text>\n",
            points.join(" "),
            W - RIGHT + 10.0,
            TOP + 16.0 * n as f64
        ));
    }
    out.push_str("</svg>\n");
    out
}
