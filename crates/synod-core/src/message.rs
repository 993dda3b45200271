//! The typed bodies of each message type, and their shape limits
//! (`docs/PROTOCOL.md` §4).

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::ConfigPatch;
use crate::domain::{Domain, DomainPattern};
use crate::error::{ErrorKind, Rejection, reject};
use crate::fixed::{Authority, Confidence, ONE, Probability, Score};
use crate::identity::AgentId;
use crate::policy::{PolicyOverrides, Stakes};
use crate::tally::Stance;
use crate::wire::{Digest, MessageType, SignedMessage, canonicalize};

/// Longest space id, in bytes.
pub const MAX_SPACE_ID_BYTES: usize = 64;
/// Longest display name, vendor or model label, in characters.
pub const MAX_LABEL_CHARS: usize = 100;
/// Most authority patterns one agent may declare or be granted.
pub const MAX_AUTHORITIES: usize = 32;
/// Longest action kind, in bytes.
pub const MAX_ACTION_KIND_BYTES: usize = 64;
/// Longest action summary, in characters.
pub const MAX_SUMMARY_CHARS: usize = 200;
/// Largest action payload, in bytes of its canonical JSON.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;
/// Longest reasoning or reviewer note, in bytes.
pub const MAX_REASONING_BYTES: usize = 4 * 1024;
/// Fewest options a belief proposal offers.
pub const MIN_OPTIONS: usize = 2;
/// Most options a belief proposal offers.
pub const MAX_OPTIONS: usize = 16;
/// Longest option label, in bytes.
pub const MAX_OPTION_BYTES: usize = 32;

/// How a proposal is decided (`docs/PROTOCOL.md` §4.4, §15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Endorse, challenge or abstain on one action; approve or reject (§5).
    /// What a proposal without a `method` means.
    #[default]
    Vote,
    /// Belief consensus: each response is a probability distribution over
    /// the proposal's options; the pooled distribution picks one (§15).
    Belief,
    /// Stake-weighted validation: approved by more than two thirds of the
    /// whole electorate's stake (§20).
    Stake,
    /// A worker proposes, supervisors evaluate, the executive decides, and
    /// workers may object (§21).
    Hierarchy,
    /// An open question: each response is a free answer; equivalent answers
    /// are clustered and the heaviest cluster wins (§19).
    Open,
}

impl Method {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Vote => "vote",
            Method::Belief => "belief",
            Method::Stake => "stake",
            Method::Hierarchy => "hierarchy",
            Method::Open => "open",
        }
    }
}

/// A probability per option, each a decimal in `[0, 1]`, summing to
/// exactly 1. Keyed by option label.
pub type Distribution = BTreeMap<String, Probability>;

/// What an agent may do in a space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Proposes and responds.
    Agent,
    /// Decides escalations; may report outcomes.
    Reviewer,
    /// Reports outcomes.
    Oracle,
    /// Changes the space's configuration and grants authorities and roles.
    Admin,
}

impl Role {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Reviewer => "reviewer",
            Role::Oracle => "oracle",
            Role::Admin => "admin",
        }
    }
}

/// An agent registers or updates its registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The space id.
    pub space: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: u64,
    /// Must exceed the sequence number of the agent's previous registration.
    pub seq: u64,
    /// Display name.
    pub name: String,
    /// Vendor label, e.g. `"anthropic"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Model label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Declared authority per domain pattern.
    #[serde(default)]
    pub authorities: BTreeMap<DomainPattern, Authority>,
    /// Roles asked for. They are recorded but grant nothing: in an open space
    /// every agent the space knows has the `agent` role, and every other role
    /// (and `agent` in a closed space) comes only from an admin's grant.
    #[serde(default)]
    pub roles: BTreeSet<Role>,
}

/// The action a proposal asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// A machine-readable kind, e.g. `approve_loan`.
    pub kind: String,
    /// One line for a person.
    pub summary: String,
    /// Free JSON for the agents, up to [`MAX_PAYLOAD_BYTES`]. Decoded by the
    /// strict rules of [`crate::wire::parse_strict`], so no key has a special
    /// meaning.
    #[serde(default, deserialize_with = "crate::wire::strict_json")]
    pub payload: Value,
}

/// An agent proposes an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proposal {
    /// The space id.
    pub space: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: u64,
    /// The domain whose authorities vote.
    pub domain: Domain,
    /// What to do.
    pub action: Action,
    /// The proposer's confidence, in `(0, 1]`.
    pub confidence: Confidence,
    /// Selects the default policy.
    pub stakes: Stakes,
    /// Log time (ms) at which the proposal closes if nothing closes it first.
    pub deadline: u64,
    /// Overrides that make the policy more cautious.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyOverrides>,
    /// The proposal this one replaces; it must be the same proposer's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<Digest>,
    /// How it is decided; absent means [`Method::Vote`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// A belief proposal's options: 2–16 distinct labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
    /// A belief proposal's own distribution over its options: the
    /// proposer's position, counted like a response when `proposer_counts`
    /// holds and scored at the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Distribution>,
    /// Proof-of-work admission (§16): a nonce that gives the proposal's
    /// stamp hash the space's admission difficulty in leading zero bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<u64>,
    /// A low-stakes proposal's committee size (§20.3): the electorate is
    /// this many members drawn by stake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committee: Option<u32>,
    /// Sealed (commit–reveal) responses (§18): when the commit phase ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<crate::sealed::SealedTerms>,
    /// An open question's terms (§19): its numeric tolerance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<crate::open::OpenTerms>,
}

impl Proposal {
    /// How the proposal is decided.
    pub fn method(&self) -> Method {
        self.method.unwrap_or_default()
    }
}

/// An electorate member endorses, challenges or abstains, or (on a belief
/// proposal) states its distribution over the options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    /// The space id.
    pub space: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: u64,
    /// The proposal id.
    pub proposal: Digest,
    /// The position; with `confidence`, unless `distribution` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stance: Option<Stance>,
    /// Confidence in `[0, 1]`; with `stance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<Confidence>,
    /// A belief proposal's response: a probability per option. Excludes
    /// `stance` and `confidence`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Distribution>,
    /// Why; kept in the audit log.
    #[serde(default)]
    pub reasoning: String,
    /// A sealed proposal's commitment (§18): alone, in the commit phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commitment: Option<Digest>,
    /// A sealed proposal's reveal: the salt, in lowercase hex, that opens
    /// the member's commitment to this answer (§18).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// An open question's answer (§19), with `confidence`: free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

/// Success or failure of a decided action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeResult {
    /// The action turned out well (score 1).
    Success,
    /// The action turned out badly (score 0).
    Failure,
}

/// An oracle or reviewer reports how a decided proposal turned out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// The space id.
    pub space: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: u64,
    /// The proposal id.
    pub proposal: Digest,
    /// Success or failure; exactly one of `result` and `score`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<OutcomeResult>,
    /// A graded outcome in `[0, 1]`; exactly one of `result` and `score`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<Score>,
    /// A belief proposal's outcome: the option that turned out right.
    /// Excludes `result` and `score`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option: Option<String>,
    /// An open question's outcome: the answer that turned out right (§19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

impl Outcome {
    /// The outcome of a vote as a score: success 1, failure 0. `None` for
    /// a belief proposal's outcome, which names an option instead.
    pub fn value(&self) -> Option<Score> {
        match (self.result, self.score) {
            (Some(OutcomeResult::Success), _) => Some(Score::ONE),
            (Some(OutcomeResult::Failure), _) => Some(Score::ZERO),
            (None, score) => score,
        }
    }
}

/// A reviewer's verdict on an escalated proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HumanVerdict {
    /// Take the action.
    Approve,
    /// Do not take it.
    Reject,
}

/// A human reviewer decides an escalated proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// The space id.
    pub space: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: u64,
    /// The proposal id.
    pub proposal: Digest,
    /// The verdict.
    pub decision: HumanVerdict,
    /// A belief proposal's approval names the option it adopts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option: Option<String>,
    /// An open question's approval names the answer it adopts (§19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// Why; kept in the audit log.
    #[serde(default)]
    pub note: String,
}

/// An admin grants an agent authorities and roles, replacing earlier grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The agent.
    pub agent: AgentId,
    /// Authority per domain pattern. In an open space a grant overrides the
    /// agent's capped declaration for the same pattern.
    #[serde(default)]
    pub authorities: BTreeMap<DomainPattern, Authority>,
    /// Roles.
    #[serde(default)]
    pub roles: BTreeSet<Role>,
    /// Its stake in whole units (§20.1), counted where the space's `stake`
    /// is `granted`; absent means 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stake: Option<u64>,
}

/// What a configuration message changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Change {
    /// Sets configuration fields; absent fields keep their value.
    Set(Box<ConfigPatch>),
    /// Grants authorities and roles to an agent.
    Grant(Grant),
}

/// An admin changes the space. The message with `seq` 0 creates the space and
/// makes its signer the first admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Configuration {
    /// The space id.
    pub space: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: u64,
    /// Must exceed the sequence number of the space's previous configuration.
    pub seq: u64,
    /// The change.
    pub change: Change,
}

/// A decoded message body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// See [`Registration`].
    Registration(Registration),
    /// See [`Proposal`].
    Proposal(Box<Proposal>),
    /// See [`Response`].
    Response(Response),
    /// See [`Outcome`].
    Outcome(Outcome),
    /// See [`Decision`].
    Decision(Decision),
    /// See [`Configuration`].
    Configuration(Configuration),
}

impl Body {
    /// Decodes and shape-checks the body of `message`. This checks what can be
    /// checked without the space's state.
    pub fn decode(message: &SignedMessage) -> Result<Body, Rejection> {
        let body = message.body();
        let decoded = match message.kind() {
            MessageType::Registration => Body::Registration(typed(body)?),
            MessageType::Proposal => Body::Proposal(Box::new(typed(body)?)),
            MessageType::Response => Body::Response(typed(body)?),
            MessageType::Outcome => Body::Outcome(typed(body)?),
            MessageType::Decision => Body::Decision(typed(body)?),
            MessageType::Configuration => Body::Configuration(typed(body)?),
        };
        decoded.check_shape()?;
        Ok(decoded)
    }

    /// The space the message is for.
    pub fn space(&self) -> &str {
        match self {
            Body::Registration(b) => &b.space,
            Body::Proposal(b) => &b.space,
            Body::Response(b) => &b.space,
            Body::Outcome(b) => &b.space,
            Body::Decision(b) => &b.space,
            Body::Configuration(b) => &b.space,
        }
    }

    /// When the signer says it created the message (ms since the epoch).
    pub fn created_at(&self) -> u64 {
        match self {
            Body::Registration(b) => b.created_at,
            Body::Proposal(b) => b.created_at,
            Body::Response(b) => b.created_at,
            Body::Outcome(b) => b.created_at,
            Body::Decision(b) => b.created_at,
            Body::Configuration(b) => b.created_at,
        }
    }

    fn check_shape(&self) -> Result<(), Rejection> {
        check_space_id(self.space())?;
        match self {
            Body::Registration(r) => {
                check_label("name", &r.name, true)?;
                if let Some(v) = &r.vendor {
                    check_label("vendor", v, false)?;
                }
                if let Some(m) = &r.model {
                    check_label("model", m, false)?;
                }
                check_authority_count(r.authorities.len())
            }
            Body::Proposal(p) => {
                let kind = &p.action.kind;
                if kind.is_empty()
                    || kind.len() > MAX_ACTION_KIND_BYTES
                    || !kind
                        .bytes()
                        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'))
                {
                    return reject(
                        ErrorKind::Malformed,
                        format!(
                            "action.kind must be 1-{MAX_ACTION_KIND_BYTES} characters of [a-z0-9_.-]"
                        ),
                    );
                }
                check_line("action.summary", &p.action.summary, MAX_SUMMARY_CHARS, true)?;
                let payload_bytes = canonicalize(&p.action.payload).len();
                if payload_bytes > MAX_PAYLOAD_BYTES {
                    return reject(
                        ErrorKind::TooLarge,
                        format!(
                            "action.payload is {payload_bytes} bytes; the limit is {MAX_PAYLOAD_BYTES}"
                        ),
                    );
                }
                if p.confidence.micros() == 0 {
                    return reject(
                        ErrorKind::OutOfRange,
                        "a proposal's confidence must be in (0, 1]",
                    );
                }
                if let Some(o) = &p.policy
                    && let Some(n) = o.reviewers_required
                {
                    crate::policy::Policy {
                        reviewers_required: n,
                        ..crate::policy::Policy::default_for(p.stakes)
                    }
                    .validate()?;
                }
                check_method(p)
            }
            Body::Response(r) => {
                if crate::sealed::check_shape(r)? {
                    return Ok(());
                }
                match (r.stance, r.confidence, &r.distribution) {
                    (None, Some(_), None) if r.answer.is_some() => {}
                    _ if r.answer.is_some() => {
                        return reject(
                            ErrorKind::Malformed,
                            "an answer comes with a confidence and nothing else",
                        );
                    }
                    (Some(_), Some(_), None) => {}
                    (None, None, Some(d)) => check_distribution("distribution", d)?,
                    _ => {
                        return reject(
                            ErrorKind::Malformed,
                            "a response carries stance and confidence, or a distribution",
                        );
                    }
                }
                if let Some(a) = &r.answer {
                    crate::open::normalize(a)?;
                }
                check_text("reasoning", &r.reasoning)
            }
            Body::Outcome(o) => {
                let given = [
                    o.result.is_some(),
                    o.score.is_some(),
                    o.option.is_some(),
                    o.answer.is_some(),
                ];
                if given.iter().filter(|&&g| g).count() != 1 {
                    return reject(
                        ErrorKind::Malformed,
                        "an outcome carries exactly one of result, score, option and answer",
                    );
                }
                if let Some(a) = &o.answer {
                    crate::open::normalize(a)?;
                }
                o.option.as_deref().map_or(Ok(()), check_option_label)
            }
            Body::Decision(d) => {
                if let Some(option) = &d.option {
                    check_option_label(option)?;
                    if d.decision != HumanVerdict::Approve {
                        return reject(ErrorKind::Malformed, "only an approval names an option");
                    }
                }
                if let Some(answer) = &d.answer {
                    crate::open::normalize(answer)?;
                    if d.decision != HumanVerdict::Approve || d.option.is_some() {
                        return reject(
                            ErrorKind::Malformed,
                            "only an approval names an answer, and not with an option",
                        );
                    }
                }
                check_text("note", &d.note)
            }
            Body::Configuration(c) => match &c.change {
                Change::Grant(g) => {
                    check_authority_count(g.authorities.len())?;
                    crate::stake::check_granted(g.stake)
                }
                Change::Set(patch) => patch.check_shape(),
            },
        }
    }
}

fn typed<T: DeserializeOwned>(body: &Value) -> Result<T, Rejection> {
    let (decoded, out_of_range) = crate::fixed::watch_out_of_range(|| T::deserialize(body));
    decoded.map_err(|e| {
        let kind = if out_of_range {
            ErrorKind::OutOfRange
        } else {
            ErrorKind::Malformed
        };
        Rejection::new(kind, format!("body: {e}"))
    })
}

fn check_space_id(space: &str) -> Result<(), Rejection> {
    if space.is_empty()
        || space.len() > MAX_SPACE_ID_BYTES
        || !space
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return reject(
            ErrorKind::Malformed,
            format!("space must be 1-{MAX_SPACE_ID_BYTES} characters of [A-Za-z0-9_.-]"),
        );
    }
    Ok(())
}

fn check_label(field: &str, text: &str, required: bool) -> Result<(), Rejection> {
    check_line(field, text, MAX_LABEL_CHARS, required)
}

fn check_line(field: &str, text: &str, max_chars: usize, required: bool) -> Result<(), Rejection> {
    if required && text.trim().is_empty() {
        return reject(ErrorKind::Malformed, format!("{field} must not be empty"));
    }
    if text.chars().count() > max_chars {
        return reject(
            ErrorKind::TooLarge,
            format!("{field} is longer than {max_chars} characters"),
        );
    }
    if text.chars().any(char::is_control) {
        return reject(
            ErrorKind::Malformed,
            format!("{field} must be one line without control characters"),
        );
    }
    Ok(())
}

fn check_text(field: &str, text: &str) -> Result<(), Rejection> {
    if text.len() > MAX_REASONING_BYTES {
        return reject(
            ErrorKind::TooLarge,
            format!(
                "{field} is {} bytes; the limit is {MAX_REASONING_BYTES}",
                text.len()
            ),
        );
    }
    Ok(())
}

/// A proposal's method, options and own distribution agree: options (2–16
/// distinct labels) and a distribution only on a belief proposal, which
/// must have options; the distribution names exactly the options.
fn check_method(p: &Proposal) -> Result<(), Rejection> {
    crate::stake::check_committee(p)?;
    // A hierarchy's evaluations and objections are public by design: the
    // executive decides after reading the supervisors, the workers object
    // to a decision they can see (§18, §21).
    if p.sealed.is_some() && p.method() == Method::Hierarchy {
        return reject(
            ErrorKind::Malformed,
            "a hierarchy proposal cannot be sealed: its evaluations and objections are public",
        );
    }
    if let Some(terms) = &p.open {
        if p.method() != Method::Open {
            return reject(
                ErrorKind::Malformed,
                "only an open question carries open terms",
            );
        }
        terms.tolerance_micros()?;
    }
    match (p.method(), &p.options) {
        (Method::Open, None) => {
            if p.distribution.is_some() {
                return reject(
                    ErrorKind::Malformed,
                    "an open question carries no distribution",
                );
            }
            Ok(())
        }
        (Method::Open, Some(_)) => reject(
            ErrorKind::Malformed,
            "an open question has no options: its answers are free",
        ),
        (Method::Vote | Method::Stake | Method::Hierarchy, None) => {
            if p.distribution.is_some() {
                return reject(
                    ErrorKind::Malformed,
                    "only a belief proposal carries a distribution",
                );
            }
            Ok(())
        }
        (Method::Vote | Method::Stake | Method::Hierarchy, Some(_)) => reject(
            ErrorKind::Malformed,
            "only a belief proposal carries options",
        ),
        (Method::Belief, None) => reject(
            ErrorKind::Malformed,
            "a belief proposal carries its options",
        ),
        (Method::Belief, Some(options)) => {
            if options.len() < MIN_OPTIONS {
                return reject(
                    ErrorKind::Malformed,
                    format!("a belief proposal offers at least {MIN_OPTIONS} options"),
                );
            }
            if options.len() > MAX_OPTIONS {
                return reject(
                    ErrorKind::TooLarge,
                    format!("{} options; the limit is {MAX_OPTIONS}", options.len()),
                );
            }
            for option in options {
                check_option_label(option)?;
            }
            let distinct: BTreeSet<&String> = options.iter().collect();
            if distinct.len() != options.len() {
                return reject(ErrorKind::Malformed, "the options must be distinct");
            }
            if let Some(d) = &p.distribution {
                check_distribution("distribution", d)?;
                check_covers(d, options)?;
            }
            Ok(())
        }
    }
}

/// An option label: 1–32 bytes of `a–z 0–9 _ . -`.
pub fn check_option_label(label: &str) -> Result<(), Rejection> {
    if label.is_empty()
        || label.len() > MAX_OPTION_BYTES
        || !label
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'))
    {
        return reject(
            ErrorKind::Malformed,
            format!("an option is 1-{MAX_OPTION_BYTES} characters of [a-z0-9_.-]"),
        );
    }
    Ok(())
}

/// A distribution on its own: at most 16 labels, each well formed, the
/// probabilities summing to exactly 1.
fn check_distribution(field: &str, d: &Distribution) -> Result<(), Rejection> {
    if d.len() > MAX_OPTIONS {
        return reject(
            ErrorKind::TooLarge,
            format!(
                "{field} has {} entries; the limit is {MAX_OPTIONS}",
                d.len()
            ),
        );
    }
    for label in d.keys() {
        check_option_label(label)?;
    }
    let sum: u64 = d.values().map(|p| u64::from(p.micros())).sum();
    if sum != u64::from(ONE) {
        return reject(
            ErrorKind::OutOfRange,
            format!(
                "{field} sums to {}; the probabilities must sum to exactly 1",
                crate::fixed::format_scaled(u128::from(sum), crate::fixed::DECIMALS)
            ),
        );
    }
    Ok(())
}

/// A distribution names exactly the proposal's options.
pub fn check_covers(d: &Distribution, options: &[String]) -> Result<(), Rejection> {
    if d.len() != options.len() || options.iter().any(|o| !d.contains_key(o)) {
        return reject(
            ErrorKind::Malformed,
            "a distribution gives a probability for each of the proposal's options, and nothing else",
        );
    }
    Ok(())
}

fn check_authority_count(count: usize) -> Result<(), Rejection> {
    if count > MAX_AUTHORITIES {
        return reject(
            ErrorKind::TooLarge,
            format!("{count} authority patterns; the limit is {MAX_AUTHORITIES}"),
        );
    }
    Ok(())
}
