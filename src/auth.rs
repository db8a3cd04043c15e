//! Optional bearer-token auth. Off unless a tokens file or
//! `NEOPS_REMOTE_LAB_TOKENS` is given; then every request but the open ones
//! (see `api::router`) names a token, and a session belongs to the token
//! that created it. The coordinator checks owners where it checks holders.

mod tokens;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

pub use tokens::{Caller, TokenDigest, TokenError, TokenSet};

/// Where the tokens come from.
#[derive(Clone)]
pub enum TokenSource {
    /// `--tokens-file`: re-read on SIGHUP.
    File(PathBuf),
    /// `NEOPS_REMOTE_LAB_TOKENS`, read once.
    List(String),
}

/// The list's value is a secret: never printed.
impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::File(path) => f.debug_tuple("File").field(path).finish(),
            TokenSource::List(_) => f.write_str("List(<redacted>)"),
        }
    }
}

impl TokenSource {
    fn read(&self) -> Result<TokenSet, TokenError> {
        match self {
            TokenSource::File(path) => {
                refuse_open_to_others(path)?;
                let text = std::fs::read_to_string(path).map_err(|error| {
                    TokenError(format!("cannot read {}: {error}", path.display()))
                })?;
                TokenSet::from_file_text(&text)
                    .map_err(|error| TokenError(format!("{}: {error}", path.display())))
            }
            TokenSource::List(text) => TokenSet::from_list(text)
                .map_err(|error| TokenError(format!("NEOPS_REMOTE_LAB_TOKENS: {error}"))),
        }
    }
}

/// Refuses a tokens file that its group or others may read or write, as
/// OpenSSH refuses such a private key file (`sshkey.c`,
/// `sshkey_perm_ok`: any of the mode bits 077).
fn refuse_open_to_others(path: &std::path::Path) -> Result<(), TokenError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|error| TokenError(format!("cannot read {}: {error}", path.display())))?
        .permissions()
        .mode();
    if mode & 0o077 == 0 {
        return Ok(());
    }
    Err(TokenError(format!(
        "{} is open to other users (mode {:04o}): run `chmod 600 {}`",
        path.display(),
        mode & 0o7777,
        path.display()
    )))
}

/// The tokens in force, swapped whole on a reload; requests still open
/// learn of a reload through [`Credential::revoked`].
#[derive(Debug)]
pub struct Auth {
    source: TokenSource,
    current: watch::Sender<Arc<TokenSet>>,
}

/// The token a request presented, kept (as its digest) for as long as the
/// request is open, to end it when a reload takes the token away.
#[derive(Debug, Clone)]
pub struct Credential {
    auth: Arc<Auth>,
    digest: TokenDigest,
}

impl Credential {
    pub fn new(auth: Arc<Auth>, presented: &str) -> Credential {
        Credential {
            auth,
            digest: TokenDigest::of(presented),
        }
    }

    /// Completes once the token is no longer in force (at once if it is
    /// not); stays pending while it is.
    pub async fn revoked(&self) {
        let mut reloads = self.auth.current.subscribe();
        loop {
            let in_force = reloads
                .borrow_and_update()
                .find_digest(&self.digest)
                .is_some();
            if !in_force {
                return;
            }
            if reloads.changed().await.is_err() {
                // Cannot happen while `self.auth` holds the sender.
                return std::future::pending().await;
            }
        }
    }
}

impl Auth {
    /// Reads the tokens; any fault refuses the start.
    pub fn load(source: TokenSource) -> Result<Auth, TokenError> {
        let set = source.read()?;
        Ok(Auth {
            source,
            current: watch::Sender::new(Arc::new(set)),
        })
    }

    /// Whether the tokens come from a file (and SIGHUP re-reads it).
    pub fn reloadable(&self) -> bool {
        matches!(self.source, TokenSource::File(_))
    }

    /// How many tokens are in force.
    pub fn count(&self) -> usize {
        self.set().len()
    }

    /// Re-reads the tokens file. On a fault the tokens in force stay.
    pub fn reload(&self) -> Result<usize, TokenError> {
        let set = self.source.read()?;
        let count = set.len();
        self.current.send_replace(Arc::new(set));
        Ok(count)
    }

    /// The caller a presented token belongs to.
    pub fn check(&self, presented: &str) -> Option<Caller> {
        self.set().find(presented)
    }

    fn set(&self) -> Arc<TokenSet> {
        Arc::clone(&self.current.borrow())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "one-0123456789abcdef";
    const TWO: &str = "two-0123456789abcdef";

    /// Writes a tokens file only its owner may read.
    fn write_private(path: &std::path::Path, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn a_reload_swaps_the_set_and_a_bad_file_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        write_private(&path, &format!("ci:{ONE}\n"));
        let auth = Auth::load(TokenSource::File(path.clone())).unwrap();
        assert!(auth.check(ONE).is_some());

        write_private(&path, &format!("ada:{TWO}\n"));
        assert_eq!(auth.reload(), Ok(1));
        assert_eq!(
            (auth.check(ONE), auth.check(TWO).unwrap().name()),
            (None, "ada")
        );

        write_private(&path, &format!("ada:{TWO}\nbroken\n"));
        let error = auth.reload().unwrap_err().0;
        assert!(error.ends_with("line 2: expected `name:token`"), "{error}");
        assert!(auth.check(TWO).is_some(), "the old set stays");
    }

    #[test]
    fn a_file_others_may_read_is_refused_like_an_open_ssh_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        for mode in [0o644, 0o640, 0o604, 0o620] {
            write_private(&path, &format!("ci:{ONE}\n"));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let error = Auth::load(TokenSource::File(path.clone())).unwrap_err().0;
            assert!(
                error.contains(&format!(
                    "(mode 0{mode:o}): run `chmod 600 {}`",
                    path.display()
                )),
                "{error}"
            );
        }
        write_private(&path, &format!("ci:{ONE}\n"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(Auth::load(TokenSource::File(path)).is_ok(), "owner only");
    }

    #[test]
    fn an_unreadable_file_is_refused_and_the_list_is_never_printed() {
        let missing = TokenSource::File("/nonexistent/tokens".into());
        assert!(
            Auth::load(missing)
                .unwrap_err()
                .0
                .starts_with("cannot read /nonexistent/tokens")
        );
        let list = TokenSource::List("ci:topsecret-0123456789".into());
        assert!(!format!("{:?}", Auth::load(list).unwrap()).contains("topsecret"));
    }
}
