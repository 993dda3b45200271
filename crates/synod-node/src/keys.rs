//! Agent key files (`{"did": "...", "seed": "<base64url 32 bytes>"}`, mode
//! 0600) and reviewer tokens.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use synod_core::Keypair;
use synod_core::wire::Digest;

/// Why a key could not be read, written or made.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

type Result<T> = std::result::Result<T, KeyError>;

macro_rules! bail {
    ($($arg:tt)*) => { return Err(KeyError(format!($($arg)*))) };
}

trait Context<T> {
    fn context(self, what: &str) -> Result<T>;
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: std::fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: &str) -> Result<T> {
        self.map_err(|e| KeyError(format!("{what}: {e}")))
    }

    fn with_context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| KeyError(format!("{}: {e}", what())))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: &str) -> Result<T> {
        self.ok_or_else(|| KeyError(what.to_string()))
    }

    fn with_context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.ok_or_else(|| KeyError(what()))
    }
}

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
    getrandom::fill(&mut seed).context("no randomness available")?;
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
    // The mode above applies only when the file is created; a replaced key
    // file must not stay readable by others.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        out.set_permissions(fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", path.display()))?;
    }
    let text = serde_json::to_string_pretty(&file).context("encoding the key")?;
    out.write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
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

/// Prefix of every reviewer token.
pub const REVIEWER_TOKEN_PREFIX: &str = "synod_rt_";

/// A new reviewer token: the prefix and 32 random bytes in base64url.
pub fn new_reviewer_token() -> Result<String> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).context("no randomness available")?;
    Ok(format!(
        "{REVIEWER_TOKEN_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(secret)
    ))
}

/// The signing key a reviewer token stands for:
/// `seed = SHA-256("synod/reviewer/v1" ‖ token)`. The node keeps no copy of
/// tokens or reviewer keys; whoever presents the token signs as that reviewer,
/// and revoking the reviewer role revokes the token.
pub fn reviewer_key(token: &str) -> Result<Keypair> {
    let secret = token
        .strip_prefix(REVIEWER_TOKEN_PREFIX)
        .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
        .filter(|b| b.len() == 32);
    if secret.is_none() {
        bail!("not a reviewer token");
    }
    let mut material = b"synod/reviewer/v1".to_vec();
    material.extend_from_slice(token.as_bytes());
    Ok(Keypair::from_seed(&Digest::of(&material).0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reviewer_tokens_stand_for_one_key() {
        let token = new_reviewer_token().unwrap();
        let a = reviewer_key(&token).unwrap();
        assert_eq!(a.id(), reviewer_key(&token).unwrap().id());
        assert_ne!(
            a.id(),
            reviewer_key(&new_reviewer_token().unwrap()).unwrap().id()
        );
        assert!(reviewer_key("synod_rt_short").is_err());
        assert!(reviewer_key(&token.replace(REVIEWER_TOKEN_PREFIX, "x")).is_err());
    }

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
