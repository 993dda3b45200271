//! `synod`: the command-line front end.

mod keys;

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

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

#[derive(Subcommand)]
enum Command {
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
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
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
    }
}
