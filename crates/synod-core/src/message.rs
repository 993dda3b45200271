//! The typed bodies of each message type, and their shape limits
//! (`docs/PROTOCOL.md` §4).

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::ConfigPatch;
use crate::domain::{Domain, DomainPattern};
use crate::error::{ErrorKind, Rejection, reject};
use crate::fixed::{Authority, Confidence, Score};
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
}

/// An electorate member endorses, challenges or abstains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    /// The space id.
    pub space: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: u64,
    /// The proposal id.
    pub proposal: Digest,
    /// The position.
    pub stance: Stance,
    /// Confidence in `[0, 1]`.
    pub confidence: Confidence,
    /// Why; kept in the audit log.
    #[serde(default)]
    pub reasoning: String,
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
}

impl Outcome {
    /// The outcome as a score: success 1, failure 0.
    pub fn value(&self) -> Score {
        match (self.result, self.score) {
            (Some(OutcomeResult::Success), _) => Score::ONE,
            (Some(OutcomeResult::Failure), _) => Score::ZERO,
            (None, Some(score)) => score,
            (None, None) => unreachable!("validated: exactly one of result and score"),
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
}

/// What a configuration message changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Change {
    /// Sets configuration fields; absent fields keep their value.
    Set(ConfigPatch),
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
                Ok(())
            }
            Body::Response(r) => check_text("reasoning", &r.reasoning),
            Body::Outcome(o) => match (o.result, o.score) {
                (Some(_), None) | (None, Some(_)) => Ok(()),
                _ => reject(
                    ErrorKind::Malformed,
                    "an outcome carries exactly one of result and score",
                ),
            },
            Body::Decision(d) => check_text("note", &d.note),
            Body::Configuration(c) => match &c.change {
                Change::Grant(g) => check_authority_count(g.authorities.len()),
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

fn check_authority_count(count: usize) -> Result<(), Rejection> {
    if count > MAX_AUTHORITIES {
        return reject(
            ErrorKind::TooLarge,
            format!("{count} authority patterns; the limit is {MAX_AUTHORITIES}"),
        );
    }
    Ok(())
}
