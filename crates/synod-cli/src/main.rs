//! `synod`: the command-line front end.

mod bench;
mod bench_cluster;
mod client;
mod cluster;
mod commands;
mod demo;
mod demo_admission;
mod demo_hierarchy;
mod demo_stake;
mod etcd;
mod serve;
mod table;

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use synod_node::keys;

#[derive(Parser)]
#[command(
    name = "synod",
    version,
    about = "Weighted, auditable agreement between AI agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How to reach a node and whose key to sign with.
#[derive(Args, Clone, Debug)]
pub struct Conn {
    /// The node's URL.
    #[arg(
        long,
        env = "SYNOD_NODE",
        default_value = "http://127.0.0.1:7420",
        global = true
    )]
    pub node: String,
    /// Sign with this key file.
    #[arg(long, env = "SYNOD_KEY", value_name = "FILE", global = true)]
    pub key: Option<PathBuf>,
    /// Sign with this named key from the config directory.
    #[arg(
        long = "as",
        value_name = "NAME",
        default_value = "default",
        global = true
    )]
    pub key_name: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Conn {
    pub fn keypair(&self) -> Result<synod_core::Keypair> {
        let path = match &self.key {
            Some(path) => path.clone(),
            None => keys::named_key_path(&self.key_name)?,
        };
        keys::read(&path).map_err(|e| anyhow::anyhow!("{e} (create one with `synod keygen`)"))
    }

    pub fn client(&self) -> client::Client {
        client::Client::new(&self.node)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: the HTTP API, events, inbox and metrics on the embedded store.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "SYNOD_LISTEN")]
        listen: Option<String>,
        /// Data directory (log, snapshots, admin key).
        #[arg(long, env = "SYNOD_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Create the space open (anyone may register; authority capped). Only
        /// matters on first start.
        #[arg(long)]
        open: bool,
        /// A JSON config file with `listen`, `data_dir`, `open`,
        /// `allowed_hosts` and `public_url`.
        #[arg(long, env = "SYNOD_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// A host name clients may use to reach the node (repeatable); IP
        /// addresses and localhost are always allowed.
        #[arg(
            long = "allowed-host",
            env = "SYNOD_ALLOWED_HOSTS",
            value_delimiter = ','
        )]
        allowed_hosts: Vec<String>,
        /// The URL clients reach the node at (e.g. https://synod.example.com):
        /// the agent card names it and is signed only then.
        #[arg(long, env = "SYNOD_PUBLIC_URL")]
        public_url: Option<String>,
        /// Run as member NODE_ID of a cluster (with --cluster-secret); the
        /// data directory then holds this node's replica.
        #[arg(long, env = "SYNOD_NODE_ID", requires = "cluster_secret")]
        node_id: Option<u64>,
        /// The cluster secret file (from `synod cluster secret`).
        #[arg(long, env = "SYNOD_CLUSTER_SECRET", value_name = "FILE")]
        cluster_secret: Option<PathBuf>,
        /// A cluster member's snapshot interval in log entries (tests use
        /// small ones to exercise compaction).
        #[arg(long, hide = true, requires = "node_id")]
        snapshot_every: Option<u64>,
        /// A cluster member's most client messages per Raft entry (1 turns
        /// batching off; `synod bench --cluster --ablation` measures it).
        #[arg(long, hide = true, requires = "node_id")]
        max_batch: Option<usize>,
        /// A cluster member's most Raft entries in flight (1 turns
        /// pipelining off).
        #[arg(long, hide = true, requires = "node_id")]
        max_inflight: Option<usize>,
    },
    /// Cluster mode: a secret, forming a cluster, membership, status.
    Cluster {
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
    /// Start a node in a temporary directory and play the example scenarios.
    Demo {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7420")]
        listen: String,
        /// Stop after the scenarios instead of serving until Ctrl-C.
        #[arg(long)]
        exit: bool,
    },
    /// Measure a node under load: durable responses per second, latencies,
    /// memory, next to single-core Ed25519 verification.
    Bench(bench::BenchArgs),
    /// Run the Oracle-Gap benchmark: synthetic agents, adversaries and
    /// aggregators on the same seeded stream of proposals.
    Sim {
        /// Seeds to run (1..=N).
        #[arg(long, default_value_t = 20)]
        seeds: u64,
        /// Proposals per seed.
        #[arg(long, default_value_t = 5_000)]
        proposals: usize,
        /// Agents in the population.
        #[arg(long, default_value_t = 50)]
        agents: usize,
        /// Members who answer each proposal.
        #[arg(long, default_value_t = 11)]
        committee: usize,
        /// Draw each committee with the core's stake-weighted lottery
        /// (stake = authority × learned trust) instead of uniformly.
        #[arg(long)]
        stake_committee: bool,
        /// Compare committee sizes (3–41, uniform and stake-weighted):
        /// accuracy and escalations against responses per decision.
        #[arg(long)]
        committee_sweep: bool,
        /// always-wrong, confident-noise, colluding-bloc, strategic-liar,
        /// sleeper, whitewasher or sybil-flood.
        #[arg(long, default_value = "always-wrong")]
        adversary: String,
        /// Share of the population that is adversarial, in [0, 1].
        #[arg(long, default_value_t = 0.2)]
        share: f64,
        /// Probability that a proposed action is good.
        #[arg(long, default_value_t = 0.5)]
        prior: f64,
        /// Cost of a false approval against a false rejection (J counts it
        /// this many times; the Bayes-style aggregators decide with it).
        #[arg(long, default_value_t = 1.0)]
        false_approval_cost: f64,
        /// Authority the adversaries claim in every domain, in [0, 1]
        /// (default: like honest agents, their real skill plus noise).
        #[arg(long)]
        adversary_authority: Option<f64>,
        /// Starting trust of every identity (0.5: a closed space's prior).
        #[arg(long, default_value_t = 0.5)]
        new_identity_trust: f64,
        /// The core's newcomer cap: identities created during the run hold
        /// at most this share of a committee until they have an outcome (1:
        /// off, a closed space; an open space's default is 0.2).
        #[arg(long, default_value_t = 1.0)]
        newcomer_cap: f64,
        /// Reveal outcomes this many proposals after the decision.
        #[arg(long, default_value_t = 0)]
        delay: usize,
        /// Print a markdown table.
        #[arg(long)]
        markdown: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Sweep every adversary kind over shares 0–40 % and write SVG charts
        /// of J against the share into DIR.
        #[arg(long, value_name = "DIR")]
        sweep: Option<PathBuf>,
        /// Compare log-odds weightings (confidence cap × trust power ×
        /// authority) with the core's linear rule: no adversaries, then every
        /// adversary kind at --share; prints a markdown table of gaps.
        #[arg(long)]
        ablation: bool,
    },
    /// Create a new agent key and print its did.
    Keygen {
        /// Name of the key under the config directory's keys/ folder.
        #[arg(long, default_value = "default")]
        name: String,
        /// Write the key to this file instead.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Replace an existing key file.
        #[arg(long)]
        force: bool,
    },
    /// Print the did of a key file.
    Did {
        /// Name of the key under the config directory's keys/ folder.
        #[arg(long, default_value = "default")]
        name: String,
        /// Read this key file instead.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
    /// Resolve one scenario (JSON, from FILE or stdin) and print the result.
    Resolve {
        /// Scenario file; `-` or nothing reads stdin.
        file: Option<PathBuf>,
    },
    /// Audit a space's log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Serve the MCP tools over standard input and output, for one agent:
    /// its key from --key (or the named key), or from --token.
    Mcp {
        /// Act as the agent of this token (`synod agent token`) instead of a
        /// key file.
        #[arg(long, env = "SYNOD_AGENT_TOKEN")]
        token: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Agents.
    Agent {
        #[command(subcommand)]
        command: commands::AgentCommand,
        #[command(flatten)]
        conn: Conn,
    },
    /// Propose an action.
    Propose {
        #[command(flatten)]
        args: commands::ProposeArgs,
        #[command(flatten)]
        conn: Conn,
    },
    /// Endorse, challenge or abstain on a proposal, or answer a belief
    /// proposal with a distribution.
    Respond {
        #[command(flatten)]
        args: commands::RespondArgs,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show a proposal: tally, responses, closure, decision package.
    Status {
        /// The proposal id.
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// List proposals.
    Proposals {
        /// Only this status.
        #[arg(long)]
        status: Option<String>,
        /// Only domains matching this pattern (`fraud.*`).
        #[arg(long)]
        domain: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Follow the space's events live, resuming where the last watch stopped.
    Watch {
        /// Start at this log index instead of where the last watch stopped.
        #[arg(long)]
        from: Option<u64>,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Report how a decided action turned out (oracle or reviewer key).
    Outcome {
        /// The proposal id.
        id: String,
        /// `success`, `failure`, or a score in [0, 1].
        #[arg(required_unless_present_any = ["option", "answer"])]
        result: Option<String>,
        /// A belief proposal's outcome: the option that turned out right.
        #[arg(long, conflicts_with = "result")]
        option: Option<String>,
        /// An open question's outcome: the answer that turned out right.
        #[arg(long, conflicts_with_all = ["result", "option"])]
        answer: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List escalated proposals waiting for reviewers.
    Escalations {
        #[command(flatten)]
        conn: Conn,
    },
    /// Decide an escalated proposal as a reviewer.
    Review {
        /// The proposal id.
        id: String,
        /// `approve` or `reject`.
        decision: String,
        /// A belief proposal's approval: the option to adopt.
        #[arg(long)]
        option: Option<String>,
        /// An open question's approval: the answer to adopt.
        #[arg(long, conflicts_with = "option")]
        answer: Option<String>,
        /// Why; kept in the audit log.
        #[arg(long, default_value = "")]
        note: String,
        /// Decide with this reviewer token instead of a key.
        #[arg(long, env = "SYNOD_REVIEWER_TOKEN")]
        token: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Reviewers.
    Reviewer {
        #[command(subcommand)]
        command: commands::ReviewerCommand,
        #[command(flatten)]
        conn: Conn,
    },
    /// The audit log.
    Log {
        #[command(subcommand)]
        command: commands::LogCommand,
        #[command(flatten)]
        conn: Conn,
    },
    /// Stake-weighted lotteries: who may propose in the current round.
    Lottery {
        #[command(subcommand)]
        command: commands::LotteryCommand,
        #[command(flatten)]
        conn: Conn,
    },
    /// Change the space's configuration and grant authorities and roles.
    Admin {
        #[command(subcommand)]
        command: commands::AdminCommand,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Re-verify every signature and the hash chain of a log export (JSON
    /// lines), and re-derive every resolution and trust update.
    Verify {
        /// The export; `-` reads stdin.
        file: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `synod sim --committee-sweep`: for committees of 3 to 41 members, drawn
/// uniformly and by the core's stake-weighted lottery, what synod decides
/// against how many responses each decision costs (issue: committees for
/// low-stakes decisions in large spaces).
fn committee_table(config: &synod_sim::Config, seeds: u64) {
    println!(
        "| committee | drawn | responses per decision | synod's J | synod's accuracy when it decides | synod's escalations | oracle's J |"
    );
    println!("|---|---|---|---|---|---|---|");
    for k in [3, 5, 11, 21, 41]
        .into_iter()
        .filter(|&k| k <= config.agents)
    {
        for stake in [false, true] {
            eprint!("\rcommittee {k}   ");
            let c = synod_sim::Config {
                committee: k,
                stake_committee: stake,
                ..config.clone()
            };
            let runs: Vec<_> = (1..=seeds).map(|seed| synod_sim::run(&c, seed)).collect();
            let rows = synod_sim::summarize(&c, &runs);
            let row = |name: &str| rows.iter().find(|r| r.aggregator == name).expect("row");
            let (synod, oracle) = (row("synod"), row("oracle"));
            println!(
                "| {k} | {} | {k} | {:.4} ± {:.4} | {:.4} ± {:.4} | {:.4} ± {:.4} | {:.4} ± {:.4} |",
                if stake { "by stake" } else { "uniformly" },
                synod.cost.0,
                synod.cost.1,
                synod.accuracy.0,
                synod.accuracy.1,
                synod.escalation_rate.0,
                synod.escalation_rate.1,
                oracle.cost.0,
                oracle.cost.1,
            );
        }
    }
    eprintln!();
}

/// The sweep's other charts: risk–coverage and calibration without
/// adversaries (seed means), and sleepers' trust over time (seed 1, 20 %).
fn extra_charts(config: &synod_sim::Config, seeds: u64, dir: &std::path::Path) -> Result<()> {
    let shown = ["majority", "synod-linear", "synod", "logistic", "oracle"];
    let clean = synod_sim::Config {
        adversary_share: 0.0,
        ..config.clone()
    };
    let runs: Vec<_> = (1..=seeds)
        .map(|seed| synod_sim::run(&clean, seed))
        .collect();
    let mean_of = |name: &str, f: &dyn Fn(&synod_sim::Counts) -> Vec<f64>| -> Vec<f64> {
        let all: Vec<Vec<f64>> = runs
            .iter()
            .filter_map(|r| r.results.iter().find(|(n, _)| n == name))
            .map(|(_, c)| f(c))
            .collect();
        (0..all[0].len())
            .map(|i| all.iter().map(|v| v[i]).sum::<f64>() / all.len() as f64)
            .collect()
    };
    let coverage: Vec<f64> = (1..=20).map(|k| f64::from(k) * 5.0).collect();
    let series: Vec<(String, Vec<f64>)> = shown
        .iter()
        .map(|n| (n.to_string(), mean_of(n, &|c| c.risk_curve.clone())))
        .collect();
    std::fs::write(
        dir.join("risk-coverage.svg"),
        synod_sim::svg_chart(
            "Risk against coverage, no adversaries",
            "coverage: the most confident % of proposals decided",
            "error rate among them",
            &coverage,
            &series,
        ),
    )?;
    let centers: Vec<f64> = (0..10).map(|b| f64::from(b) / 10.0 + 0.05).collect();
    let mut series: Vec<(String, Vec<f64>)> = ["synod-linear", "synod", "log-odds", "oracle"]
        .iter()
        .map(|n| {
            let observed = mean_of(n, &|c| {
                c.calibration
                    .iter()
                    .enumerate()
                    .map(|(b, (_, y, count))| {
                        if *count == 0 {
                            f64::from(b as u32) / 10.0 + 0.05
                        } else {
                            y / *count as f64
                        }
                    })
                    .collect()
            });
            (n.to_string(), observed)
        })
        .collect();
    series.push(("perfectly calibrated".into(), centers.clone()));
    std::fs::write(
        dir.join("calibration.svg"),
        synod_sim::svg_chart(
            "Calibration of the consensus probability, no adversaries",
            "stated probability that the action is good (tenths)",
            "share of those actions that were good",
            &centers,
            &series,
        ),
    )?;
    let sleepy = synod_sim::Config {
        adversary: synod_sim::Adversary::Sleeper,
        adversary_share: 0.2,
        ..config.clone()
    };
    if let Some(trace) = synod_sim::run(&sleepy, 1).sleepers {
        let xs: Vec<f64> = trace.series.iter().map(|p| p.0 as f64).collect();
        let series = vec![
            (
                "sleepers".to_string(),
                trace.series.iter().map(|p| p.1).collect(),
            ),
            (
                "honest agents".to_string(),
                trace.series.iter().map(|p| p.2).collect(),
            ),
        ];
        std::fs::write(
            dir.join("sleeper-trust.svg"),
            synod_sim::svg_chart(
                &format!(
                    "Mean trust, 20 % sleepers turning at proposal {}",
                    trace.turn
                ),
                "proposal",
                "mean trust (the core's rule)",
                &xs,
                &series,
            ),
        )?;
    }
    Ok(())
}

fn read_input(file: Option<&PathBuf>) -> Result<String> {
    let mut text = String::new();
    match file {
        Some(path) if path.as_os_str() != "-" => {
            text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
        }
        _ => {
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading stdin")?;
        }
    }
    Ok(text)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if let Some(api) = e.downcast_ref::<client::ApiError>() {
                eprintln!("error: {api}");
                return ExitCode::FAILURE;
            }
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve {
            listen,
            data_dir,
            open,
            config,
            allowed_hosts,
            public_url,
            node_id,
            cluster_secret,
            snapshot_every,
            max_batch,
            max_inflight,
        } => {
            let file = match config {
                Some(path) => serve::ConfigFile::read(&path)?,
                None => serve::ConfigFile::default(),
            };
            let listen = listen
                .or(file.listen)
                .unwrap_or_else(|| synod_node::DEFAULT_LISTEN.to_string());
            let data_dir = data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(synod_node::DEFAULT_DATA_DIR));
            let open = open || file.open.unwrap_or(false);
            let mut allowed_hosts = allowed_hosts;
            allowed_hosts.extend(file.allowed_hosts.unwrap_or_default());
            let cluster = match (
                node_id.or(file.node_id),
                cluster_secret.or(file.cluster_secret),
            ) {
                (None, None) => None,
                (Some(node_id), Some(path)) => {
                    let base = synod_node::cluster::ClusterConfig::new(
                        node_id,
                        synod_node::cluster::ClusterSecret::read(&path)?,
                    );
                    Some(synod_node::cluster::ClusterConfig {
                        snapshot_every: snapshot_every.unwrap_or(base.snapshot_every),
                        max_batch: max_batch.unwrap_or(base.max_batch),
                        max_inflight: max_inflight.unwrap_or(base.max_inflight),
                        ..base
                    })
                }
                _ => anyhow::bail!("a cluster node needs both --node-id and --cluster-secret"),
            };
            if cluster.is_some() && open {
                anyhow::bail!(
                    "--open applies to a single node; a cluster's space is created by `synod cluster init --open`"
                );
            }
            serve::serve(
                &listen,
                synod_node::NodeConfig {
                    data_dir,
                    open,
                    space_id: None,
                    allowed_hosts,
                    public_url: public_url.or(file.public_url),
                },
                cluster,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { listen, exit } => {
            demo::run(&listen, exit)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => {
            bench::run(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim {
            seeds,
            proposals,
            agents,
            committee,
            stake_committee,
            committee_sweep,
            adversary,
            share,
            new_identity_trust,
            prior,
            false_approval_cost,
            adversary_authority,
            newcomer_cap,
            delay,
            markdown,
            json,
            sweep,
            ablation,
        } => {
            let Some(adversary) = synod_sim::Adversary::parse(&adversary) else {
                anyhow::bail!("unknown adversary {adversary:?}");
            };
            if !(0.0..=1.0).contains(&share) || agents < 11 || seeds == 0 {
                anyhow::bail!(
                    "--share must be in [0, 1], --agents at least 11, --seeds at least 1"
                );
            }
            if committee == 0 || committee > agents {
                anyhow::bail!("--committee must be in 1..=--agents");
            }
            if !(0.01..=0.99).contains(&prior) || !(1.0..=1000.0).contains(&false_approval_cost) {
                anyhow::bail!(
                    "--prior must be in [0.01, 0.99] and --false-approval-cost in [1, 1000]"
                );
            }
            let config = synod_sim::Config {
                proposals,
                agents,
                adversary,
                adversary_share: share,
                new_identity_trust: new_identity_trust.clamp(0.0, 1.0),
                adversary_authority: adversary_authority.map(|a| a.clamp(0.0, 1.0)),
                newcomer_cap: newcomer_cap.clamp(0.0, 1.0),
                prior_good: prior,
                false_approval_cost,
                outcome_delay: delay,
                committee,
                stake_committee,
                ..synod_sim::Config::default()
            };
            if committee_sweep {
                committee_table(&config, seeds);
                return Ok(ExitCode::SUCCESS);
            }
            if ablation {
                let mut weightings = Vec::new();
                for confidence in [0.8_f64, 0.9, 0.99] {
                    for trust_power in [1, 2] {
                        for authority in [true, false] {
                            weightings.push(synod_sim::Weighting {
                                cap: (confidence / (1.0 - confidence)).ln(),
                                trust_power,
                                authority,
                                trust_cap: 1.0,
                                calibrated: false,
                            });
                        }
                    }
                }
                // Per-agent weight caps on the default: trust above the
                // cap adds no weight (the uncapped row is above).
                for trust_cap in [0.5, 0.6, 0.65, 0.7] {
                    weightings.push(synod_sim::Weighting {
                        trust_cap,
                        ..synod_sim::Weighting::CANDIDATE
                    });
                }
                // The default with a learned per-agent calibration.
                for confidence in [0.8_f64, 0.9, 0.99] {
                    for authority in [true, false] {
                        weightings.push(synod_sim::Weighting {
                            cap: (confidence / (1.0 - confidence)).ln(),
                            authority,
                            calibrated: true,
                            ..synod_sim::Weighting::CANDIDATE
                        });
                    }
                }
                let mut columns = vec![("no adversaries".to_string(), config.adversary, 0.0)];
                for kind in synod_sim::Adversary::ALL {
                    columns.push((
                        format!("{} {:.0} %", kind.name(), share * 100.0),
                        kind,
                        share,
                    ));
                }
                let mut table: Vec<(String, Vec<String>)> = Vec::new();
                for (c, (_, kind, share)) in columns.iter().enumerate() {
                    eprint!("\r{} {:.0}%   ", kind.name(), share * 100.0);
                    let cfg = synod_sim::Config {
                        adversary: *kind,
                        adversary_share: *share,
                        weightings: weightings.clone(),
                        ..config.clone()
                    };
                    let runs: Vec<_> = (1..=seeds).map(|seed| synod_sim::run(&cfg, seed)).collect();
                    let rows = synod_sim::summarize(&cfg, &runs);
                    let shown = rows.iter().filter(|r| {
                        ["synod-linear", "synod", "logistic"].contains(&r.aggregator.as_str())
                            || r.aggregator.starts_with("logit ")
                    });
                    for (k, r) in shown.enumerate() {
                        if c == 0 {
                            table.push((r.aggregator.clone(), Vec::new()));
                        }
                        table[k].1.push(format!("{:.2} ± {:.2}", r.gap.0, r.gap.1));
                    }
                }
                eprintln!();
                println!(
                    "| weighting | {} |",
                    columns
                        .iter()
                        .map(|c| c.0.as_str())
                        .collect::<Vec<_>>()
                        .join(" | ")
                );
                println!("|---|{}", "---|".repeat(columns.len()));
                for (name, cells) in table {
                    println!("| {name} | {} |", cells.join(" | "));
                }
                return Ok(ExitCode::SUCCESS);
            }
            if let Some(dir) = sweep {
                std::fs::create_dir_all(&dir)?;
                let shares = [0.0, 0.1, 0.2, 0.3, 0.4];
                println!(
                    "| adversary | aggregator | {} |",
                    shares
                        .map(|s| format!("gap at {:.0} %", s * 100.0))
                        .join(" | ")
                );
                println!("|---|---|{}", "---|".repeat(shares.len()));
                for kind in synod_sim::Adversary::ALL {
                    let mut per_share = Vec::new();
                    for share in shares {
                        eprint!("\r{} {:.0}%   ", kind.name(), share * 100.0);
                        let c = synod_sim::Config {
                            adversary: kind,
                            adversary_share: share,
                            ..config.clone()
                        };
                        let runs: Vec<_> =
                            (1..=seeds).map(|seed| synod_sim::run(&c, seed)).collect();
                        per_share.push(synod_sim::summarize(&c, &runs));
                    }
                    let names: Vec<String> =
                        per_share[0].iter().map(|r| r.aggregator.clone()).collect();
                    let series: Vec<(String, Vec<f64>)> = names
                        .iter()
                        .enumerate()
                        .map(|(i, n)| {
                            (
                                n.clone(),
                                per_share.iter().map(|rows| rows[i].cost.0).collect(),
                            )
                        })
                        .collect();
                    let xs = shares.map(|s| s * 100.0);
                    let svg = synod_sim::svg_chart(
                        &format!("J against the share of {} agents", kind.name()),
                        "adversaries, % of the population",
                        "J = error + 0.2 × escalation",
                        &xs,
                        &series,
                    );
                    std::fs::write(dir.join(format!("j-{}.svg", kind.name())), svg)?;
                    // synod (the default), the core's linear rule, and the
                    // best of every other aggregator but the oracle: the
                    // one synod must beat on J.
                    let gap = |r: &synod_sim::Row| format!("{:.2} ± {:.2}", r.gap.0, r.gap.1);
                    for name in ["synod", "synod-linear"] {
                        let gaps: Vec<String> = per_share
                            .iter()
                            .map(|rows| {
                                gap(rows.iter().find(|r| r.aggregator == name).expect("row"))
                            })
                            .collect();
                        println!("| {} | {name} | {} |", kind.name(), gaps.join(" | "));
                    }
                    let best: Vec<String> = per_share
                        .iter()
                        .map(|rows| {
                            let r = rows
                                .iter()
                                .filter(|r| !["synod", "oracle"].contains(&r.aggregator.as_str()))
                                .min_by(|a, b| a.cost.0.total_cmp(&b.cost.0))
                                .expect("rows");
                            format!("{} ({})", gap(r), r.aggregator)
                        })
                        .collect();
                    println!("| {} | best other | {} |", kind.name(), best.join(" | "));
                }
                eprintln!();
                extra_charts(&config, seeds, &dir)?;
                return Ok(ExitCode::SUCCESS);
            }
            let runs: Vec<_> = (1..=seeds)
                .map(|seed| {
                    eprint!("\rseed {seed}/{seeds}");
                    synod_sim::run(&config, seed)
                })
                .collect();
            eprintln!();
            let rows = synod_sim::summarize(&config, &runs);
            let recovery = synod_sim::sleeper_recovery(&runs);
            if json {
                let recovery = recovery.map(|((mean, half), recovered, total)| {
                    serde_json::json!({"proposals_after_turn": [mean, half], "recovered": recovered, "runs": total})
                });
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"config": config, "rows": rows, "sleeper_recovery": recovery})
                    )?
                );
            } else if markdown {
                print!("{}", synod_sim::markdown(&rows));
            } else {
                println!(
                    "{} agents, {:.0}% {}, {} proposals × {} seeds, escalation cost {}",
                    config.agents,
                    config.adversary_share * 100.0,
                    config.adversary.name(),
                    config.proposals,
                    seeds,
                    config.escalation_cost
                );
                let table: Vec<Vec<String>> = rows.iter().map(synod_sim::Row::cells).collect();
                let headers: Vec<String> = synod_sim::COLUMNS
                    .iter()
                    .map(|c| c.to_uppercase())
                    .collect();
                table::print(
                    &headers.iter().map(String::as_str).collect::<Vec<_>>(),
                    &table,
                );
            }
            if let Some(((mean, half), recovered, total)) = recovery
                && !json
            {
                println!(
                    "\nsleepers turn at proposal {}: the core's trust put them below half the honest agents' trust {mean:.0} ± {half:.0} proposals later (in {recovered} of {total} runs)",
                    config.sleeper_turns_at
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Keygen { name, out, force } => {
            let path = match out {
                Some(path) => path,
                None => keys::named_key_path(&name)?,
            };
            let key = keys::generate()?;
            keys::write(&path, &key, force)?;
            println!("{}", key.id());
            eprintln!("key written to {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Did { name, key } => {
            let path = match key {
                Some(path) => path,
                None => keys::named_key_path(&name)?,
            };
            println!("{}", keys::read(&path)?.id());
            Ok(ExitCode::SUCCESS)
        }
        Command::Resolve { file } => {
            let input = read_input(file.as_ref())?;
            match synod_core::scenario::run(&input) {
                Ok(result) => {
                    println!("{}", serde_json::to_string_pretty(&result)?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(rejection) => {
                    eprintln!("{}: {}", rejection.kind, rejection.message);
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Audit {
            command: AuditCommand::Verify { file, json },
        } => {
            let input = read_input(Some(&file))?;
            match synod_core::audit::verify(input.lines()) {
                Ok(summary) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&summary)?);
                    } else {
                        println!("audit passed: {} entries verified", summary.entries);
                        println!("  space            {}", summary.space);
                        println!("  signed messages  {}", summary.messages);
                        println!("  refused messages {}", summary.refused);
                        for (status, count) in &summary.proposals {
                            println!("  proposals {status:<18} {count}");
                        }
                        println!("  trust updates    {}", summary.trust_updates);
                        println!("  head             {}", summary.head);
                        println!("  state hash       {}", summary.state_hash);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("audit failed: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Mcp { token, conn } => {
            let key = match token {
                Some(token) => synod_mcp::token_keypair(token.trim()).context(
                    "--token is not an agent token (synod_at_ and 64 hex characters, from `synod agent token`)",
                )?,
                None => conn.keypair()?,
            };
            let api: std::sync::Arc<dyn synod_mcp::Api> = std::sync::Arc::new(conn.client());
            // Standard output is the protocol channel from here on.
            serve::runtime()?
                .block_on(synod_mcp::serve_stdio(synod_mcp::Synod::with_key(api, key)))
                .map_err(|e| anyhow::anyhow!("mcp: {e}"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Agent { command, conn } => commands::agent(command, &conn),
        Command::Propose { args, conn } => commands::propose(args, &conn),
        Command::Respond { args, conn } => commands::respond(args, &conn),
        Command::Status { id, conn } => commands::status(&id, &conn),
        Command::Proposals {
            status,
            domain,
            conn,
        } => commands::proposals(status, domain, &conn),
        Command::Watch { from, count, conn } => commands::watch(from, count, &conn),
        Command::Outcome {
            id,
            result,
            option,
            answer,
            conn,
        } => commands::outcome(
            &id,
            result.as_deref(),
            option.as_deref(),
            answer.as_deref(),
            &conn,
        ),
        Command::Escalations { conn } => commands::escalations(&conn),
        Command::Review {
            id,
            decision,
            option,
            answer,
            note,
            token,
            conn,
        } => commands::review(
            &id,
            &decision,
            option.as_deref(),
            answer.as_deref(),
            &note,
            token.as_deref(),
            &conn,
        ),
        Command::Reviewer { command, conn } => commands::reviewer(command, &conn),
        Command::Log { command, conn } => commands::log(command, &conn),
        Command::Cluster { command } => cluster::run(command),
        Command::Admin { command, conn } => commands::admin(command, &conn),
        Command::Lottery { command, conn } => commands::lottery(command, &conn),
    }
}
