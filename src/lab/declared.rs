//! Declared labs on disk: the uploads a session said it will ask for
//! (`POST /session/{id}/labs`), kept until the session ends, across
//! restarts when they live in the state directory.
//!
//! Layout: `<root>/<session id>/<index>/` holds the upload's files at their
//! relative paths under `files/` and the topology's relative path in
//! `topology`. A declaration is written into a temporary folder beside its
//! final one and renamed into place, so a crash leaves either the whole
//! declaration or a temporary folder that the next start removes.

use std::path::{Path, PathBuf};

use super::upload::{Identity, Upload};
use crate::session_id::SessionId;

/// Temporary folders start with this; no session id does.
const PARTIAL: &str = ".partial-";

/// The folder of every session's declared labs.
#[derive(Debug, Clone)]
pub struct DeclaredLabs {
    root: PathBuf,
}

impl DeclaredLabs {
    pub fn new(root: PathBuf) -> Self {
        DeclaredLabs { root }
    }

    fn session_dir(&self, session: &SessionId) -> PathBuf {
        self.root.join(session.full())
    }

    /// Writes `upload` as the session's declared lab number `index` (from
    /// 0) and syncs it to disk. On an error nothing of it is left.
    pub async fn save(
        &self,
        session: &SessionId,
        index: usize,
        upload: &Upload,
    ) -> std::io::Result<()> {
        let dir = self.session_dir(session);
        let partial = dir.join(format!("{PARTIAL}{index}"));
        let done = dir.join(index.to_string());
        let files = upload.files();
        let topology = upload.topology_path().to_string_lossy().into_owned();
        tokio::task::spawn_blocking(move || {
            let written = write_declaration(&partial, &done, &files, &topology);
            if written.is_err() {
                let _ = std::fs::remove_dir_all(&partial);
            }
            written
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Reads the session's declared lab number `index` back.
    pub async fn load(&self, session: &SessionId, index: usize) -> std::io::Result<Upload> {
        let dir = self.session_dir(session).join(index.to_string());
        tokio::task::spawn_blocking(move || read_declaration(&dir))
            .await
            .map_err(std::io::Error::other)?
    }

    /// Deletes every declared lab of the session.
    pub async fn forget(&self, session: &SessionId) {
        let dir = self.session_dir(session);
        let _ = tokio::task::spawn_blocking(move || remove(&dir)).await;
    }

    /// At start-up: the identities of the declared labs of each session in
    /// `live`, in order; everything else (ended sessions' folders, partial
    /// writes, a declaration that no longer reads back) is deleted.
    pub fn restore(&self, live: &[SessionId]) -> Vec<(SessionId, Vec<Identity>)> {
        let mut restored = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return restored;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            match live.iter().find(|id| id.full() == name) {
                Some(id) => restored.push((*id, self.restore_session(id))),
                None => remove(&entry.path()),
            }
        }
        restored
    }

    /// The session's declarations that read back whole, in order; the
    /// first that does not ends the list (later ones are deleted with it).
    fn restore_session(&self, session: &SessionId) -> Vec<Identity> {
        let dir = self.session_dir(session);
        let mut identities = Vec::new();
        loop {
            let declaration = dir.join(identities.len().to_string());
            match read_declaration(&declaration) {
                Ok(upload) => identities.push(upload.identity),
                Err(error) => {
                    if declaration.exists() {
                        tracing::warn!(session = %session, %error, path = %declaration.display(),
                            "a declared lab does not read back; it and later ones are dropped");
                    }
                    break;
                }
            }
        }
        let kept = identities.len();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.parse::<usize>().is_ok_and(|index| index < kept) {
                    continue;
                }
                remove(&entry.path());
            }
        }
        identities
    }
}

fn remove(path: &Path) {
    if let Err(error) = std::fs::remove_dir_all(path)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), %error, "cannot delete declared labs");
    }
}

fn write_declaration(
    partial: &Path,
    done: &Path,
    files: &[(PathBuf, Vec<u8>)],
    topology: &str,
) -> std::io::Result<()> {
    let _ = std::fs::remove_dir_all(partial);
    std::fs::create_dir_all(partial.join("files"))?;
    for (path, bytes) in files {
        let target = partial.join("files").join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        write_synced(&target, bytes)?;
    }
    write_synced(&partial.join("topology"), topology.as_bytes())?;
    std::fs::rename(partial, done)?;
    // The rename is durable once the folder holding it is synced.
    std::fs::File::open(done.parent().unwrap_or(done))?.sync_all()
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn read_declaration(dir: &Path) -> std::io::Result<Upload> {
    let topology = PathBuf::from(std::fs::read_to_string(dir.join("topology"))?);
    let root = dir.join("files");
    let mut files = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(&root).map_err(std::io::Error::other)?;
                files.push((relative.to_path_buf(), std::fs::read(&path)?));
            }
        }
    }
    Upload::from_files(&topology, files).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} names no file of the declaration", topology.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::upload::tests_support::upload;

    #[tokio::test]
    async fn a_declaration_reads_back_with_its_identity_and_is_forgotten_with_its_session() {
        let dir = tempfile::tempdir().unwrap();
        let declared = DeclaredLabs::new(dir.path().to_path_buf());
        let (kept, gone) = (SessionId::new(), SessionId::new());
        let first = upload("lab.yml", "nodes: [r1]\n", true);
        let second = upload("other.yml", "nodes: [r2]\n", true);
        declared.save(&kept, 0, &first).await.unwrap();
        declared.save(&kept, 1, &second).await.unwrap();
        declared.save(&gone, 0, &first).await.unwrap();
        let back = declared.load(&kept, 1).await.unwrap();
        assert_eq!(back.identity, second.identity);

        // A partial write and an ended session's folder are removed.
        std::fs::create_dir_all(dir.path().join(kept.full()).join(".partial-2")).unwrap();
        let restored = declared.restore(&[kept]);
        assert_eq!(
            restored,
            vec![(kept, vec![first.identity.clone(), second.identity.clone()])]
        );
        assert!(!dir.path().join(gone.full()).exists());
        assert!(!dir.path().join(kept.full()).join(".partial-2").exists());

        declared.forget(&kept).await;
        assert!(!dir.path().join(kept.full()).exists());
    }

    #[tokio::test]
    async fn a_damaged_declaration_ends_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let declared = DeclaredLabs::new(dir.path().to_path_buf());
        let session = SessionId::new();
        let lab = upload("lab.yml", "nodes: [r1]\n", true);
        for index in 0..3 {
            declared.save(&session, index, &lab).await.unwrap();
        }
        let second = dir.path().join(session.full()).join("1");
        std::fs::remove_file(second.join("topology")).unwrap();
        let restored = declared.restore(&[session]);
        assert_eq!(restored, vec![(session, vec![lab.identity.clone()])]);
        assert!(!second.exists());
        assert!(!dir.path().join(session.full()).join("2").exists());
    }
}
