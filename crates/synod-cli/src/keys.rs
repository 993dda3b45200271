//! Agent key files: `{"did": "...", "seed": "<base64url 32 bytes>"}`, mode 0600.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use synod_core::Keypair;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    did: String,
    seed: String,
}

/// Where named keys live: `$SYNOD_CONFIG_DIR`, else `$XDG_CONFIG_HOME/synod`,
/// else `~/.config/synod`; keys go in its `keys/` folder.
pub fn key_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("SYNOD_CONFIG_DIR") {
        return Ok(PathBuf::from(dir).join("keys"));
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(dir).join("synod").join("keys"));
    }
    let home = std::env::var_os("HOME")
        .context("neither SYNOD_CONFIG_DIR, XDG_CONFIG_HOME nor HOME is set")?;
    Ok(PathBuf::from(home)
        .join(".config")
        .join("synod")
        .join("keys"))
}

/// The path of the named key.
pub fn named_key_path(name: &str) -> Result<PathBuf> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        || name.starts_with('.')
    {
        bail!("key name {name:?} must be letters, digits, '_', '-' or '.'");
    }
    Ok(key_dir()?.join(format!("{name}.json")))
}

/// A fresh key from the operating system's random source.
pub fn generate() -> Result<Keypair> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness available: {e}"))?;
    Ok(Keypair::from_seed(&seed))
}

/// Writes `key` to `path` (mode 0600), refusing to overwrite unless `force`.
pub fn write(path: &Path, key: &Keypair, force: bool) -> Result<()> {
    if path.exists() && !force {
        bail!(
            "{} already exists; pass --force to replace it",
            path.display()
        );
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = KeyFile {
        did: key.id().to_string(),
        seed: URL_SAFE_NO_PAD.encode(key.seed()),
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut out = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    let text = serde_json::to_string_pretty(&file)?;
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")?;
    out.sync_all()?;
    Ok(())
}

/// Reads a key file, checking that its did matches its seed.
pub fn read(path: &Path) -> Result<Keypair> {
    let text =
        fs::read_to_string(path).with_context(|| format!("reading key {}", path.display()))?;
    let file: KeyFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a synod key file", path.display()))?;
    let seed: [u8; 32] = URL_SAFE_NO_PAD
        .decode(&file.seed)
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| {
            format!(
                "{}: seed must be 32 bytes of unpadded base64url",
                path.display()
            )
        })?;
    let key = Keypair::from_seed(&seed);
    if key.id().as_str() != file.did {
        bail!("{}: the did does not match the seed", path.display());
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trips_and_refuses_overwrite() {
        let dir = std::env::temp_dir().join(format!("synod-keytest-{}", std::process::id()));
        let path = dir.join("k.json");
        let key = Keypair::from_seed(&[9; 32]);
        write(&path, &key, false).unwrap();
        assert_eq!(read(&path).unwrap().id(), key.id());
        assert!(write(&path, &key, false).is_err());
        write(&path, &key, true).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}
