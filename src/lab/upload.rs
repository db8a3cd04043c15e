//! `POST /lab` uploads: a lab folder, checked completely before the lab is
//! touched, and written out on demand.
//!
//! An upload is a folder: the topology's file name may be a path relative to
//! the upload's root (`labs/basic/topology.yml`), every extra file's name is
//! a path relative to that root, and netlab runs in the topology's folder.
//! [`Upload::check`] applies every rule (names, lengths, collisions, names
//! netlab owns, the YAML pre-check) on a blocking thread and hands back an
//! [`Upload`] that can no longer fail for its content; [`Upload::write_into`]
//! places it where `..` from the lab leads only to empty, server-owned
//! folders. Reading the HTTP form is the API layer's job
//! (`api::upload_form`); this module sees plain parts.

mod names;
mod yaml;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

pub use names::{MAX_COMPONENT_BYTES, MAX_PATH_BYTES};
pub use yaml::{Budget, CHECK_TIME_LIMIT, MAX_ALIAS_NODES, MAX_FLOW_ENTRIES_AHEAD, MAX_NESTING};

/// A lab's identity: SHA-256 over its topology's bytes, its folder and every
/// extra file's relative path and bytes (see [`Identity::of_lab`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity(String);

impl Identity {
    /// An identity computed by an earlier run (hex, as [`Identity`]'s
    /// `Display` writes it).
    pub fn restored(hex: String) -> Self {
        Identity(hex)
    }

    /// The identity of a lab folder. Each field is length-prefixed (u64,
    /// big-endian), so no two different folders encode alike:
    /// `topology folder, topology bytes, count, (path, bytes) …` with the
    /// extra files sorted by their path bytes. The topology's file name is
    /// not part of it: the same files under another name are the same lab.
    pub fn of_lab(
        topology_dir: &Path,
        topology: &[u8],
        extra_files: &[(PathBuf, Vec<u8>)],
    ) -> Self {
        let mut sorted: Vec<&(PathBuf, Vec<u8>)> = extra_files.iter().collect();
        sorted.sort_by(|(a, _), (b, _)| {
            a.as_os_str()
                .as_encoded_bytes()
                .cmp(b.as_os_str().as_encoded_bytes())
        });
        let mut hasher = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hasher.update((bytes.len() as u64).to_be_bytes());
            hasher.update(bytes);
        };
        field(topology_dir.as_os_str().as_encoded_bytes());
        field(topology);
        field(&(sorted.len() as u64).to_be_bytes());
        for (path, bytes) in sorted {
            field(path.as_os_str().as_encoded_bytes());
            field(bytes);
        }
        Identity(hex(&hasher.finalize()))
    }

    /// The identity of a lab that is one topology file at the upload's root.
    pub fn of(topology: &[u8]) -> Self {
        Identity::of_lab(Path::new(""), topology, &[])
    }

    /// A short prefix, enough to tell labs apart in logs and directory names.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an upload was refused. Nothing has been written when this is returned.
#[derive(Debug, PartialEq, Eq)]
pub enum UploadError {
    /// A form field is missing or malformed (HTTP 422).
    Form(String),
    /// The files themselves are unacceptable (HTTP 400).
    Invalid(String),
    /// The upload is larger than allowed (HTTP 413).
    TooLarge { limit: u64 },
    /// The client stopped sending the body (HTTP 408).
    Stalled { idle: std::time::Duration },
    /// The body took longer than the whole upload may (HTTP 408).
    TooSlow { limit: std::time::Duration },
}

/// A file part of the form as it arrived, before any rule was applied.
#[derive(Debug, Clone)]
pub struct FilePart {
    /// The part's file name; `None` when the part was a plain field.
    pub name: Option<String>,
    pub bytes: Vec<u8>,
}

/// The `POST /lab` form as it arrived: every `topology` and `extra_files`
/// part in order, and the `reuse` field's text.
#[derive(Debug, Default)]
pub struct Form {
    pub topology: Vec<FilePart>,
    pub reuse: Option<String>,
    pub extra_files: Vec<FilePart>,
}

/// A checked upload, still in memory.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The topology's file name, without any folder part.
    pub topology_name: String,
    /// The topology's path relative to the upload's root.
    topology_path: PathBuf,
    topology: Vec<u8>,
    /// Paths relative to the upload's root.
    extra_files: Vec<(PathBuf, Vec<u8>)>,
    pub identity: Identity,
    pub reuse: bool,
}

/// Empty, server-owned folders between a lab's own directory and the
/// upload's root: a topology's `../../defaults.yml` that was not uploaded
/// finds nothing there instead of a stray file next to the work folder.
/// Lab collections refer one or two folders up; this leaves room for four.
const CONFINEMENT: [&str; 4] = ["_", "_", "_", "_"];

impl Upload {
    /// Applies every rule to `form`, in the contract's order: form fields
    /// (422), then extension, names and content (400). Runs on a blocking
    /// thread: the YAML check is CPU work and must not hold an async worker.
    /// Dropping the returned future (its request ended) stops the check.
    pub async fn check(form: Form) -> Result<Upload, UploadError> {
        let cancelled = CancelOnDrop(Arc::new(AtomicBool::new(false)));
        let budget = Budget::new(Arc::clone(&cancelled.0));
        tokio::task::spawn_blocking(move || Upload::validate_within(form, budget))
            .await
            .map_err(|error| UploadError::Invalid(format!("upload check failed: {error}")))?
    }

    /// [`Upload::validate_within`] with a fresh budget, for tests.
    #[cfg(test)]
    fn validate(form: Form) -> Result<Upload, UploadError> {
        Upload::validate_within(form, Budget::new(Arc::default()))
    }

    fn validate_within(form: Form, budget: Budget) -> Result<Upload, UploadError> {
        let mut topologies = form.topology.into_iter();
        let topology = match (topologies.next(), topologies.next()) {
            (Some(file), None) => file,
            (None, _) => return Err(UploadError::Form("topology: field required".into())),
            (Some(_), Some(_)) => {
                return Err(UploadError::Form("topology: send exactly one file".into()));
            }
        };
        let Some(topology_file_name) = topology.name else {
            return Err(UploadError::Form("topology: expected a file upload".into()));
        };
        let reuse = match form.reuse {
            None => true,
            Some(text) => parse_bool(&text).ok_or_else(|| {
                UploadError::Form(format!("reuse: expected a boolean, got {text:?}"))
            })?,
        };

        let lower = topology_file_name.to_ascii_lowercase();
        if !(lower.ends_with(".yml") || lower.ends_with(".yaml")) {
            return Err(UploadError::Invalid(
                "Topology must be a .yml or .yaml file".into(),
            ));
        }
        let topology_path = names::confined_path(&topology_file_name)?;
        let topology_name = topology_path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .ok_or_else(|| UploadError::Invalid("Topology file name names no file".into()))?;

        let mut extra_files = Vec::with_capacity(form.extra_files.len());
        for file in form.extra_files {
            let name = file
                .name
                .ok_or_else(|| UploadError::Invalid("Extra file must have a filename".into()))?;
            extra_files.push((names::confined_path(&name)?, file.bytes));
        }
        let topology_dir = topology_path
            .parent()
            .unwrap_or(Path::new(""))
            .to_path_buf();
        names::check_layout(
            &topology_path,
            extra_files.iter().map(|(path, _)| path.as_path()),
        )?;
        yaml::check_topology(&topology.bytes, budget)?;

        Ok(Upload {
            identity: Identity::of_lab(&topology_dir, &topology.bytes, &extra_files),
            topology_name,
            topology_path,
            topology: topology.bytes,
            extra_files,
            reuse,
        })
    }

    /// A lab read back from files a check accepted before (a declared lab,
    /// see [`super::declared`]): `topology` is the topology's path among
    /// `files` (relative paths); `reuse` is true. `None` when `files` lacks
    /// the topology.
    pub fn from_files(topology: &Path, mut files: Vec<(PathBuf, Vec<u8>)>) -> Option<Upload> {
        let at = files.iter().position(|(path, _)| path == topology)?;
        let (topology_path, bytes) = files.swap_remove(at);
        let topology_name = topology_path.file_name()?.to_string_lossy().into_owned();
        let topology_dir = topology_path.parent().unwrap_or(Path::new(""));
        Some(Upload {
            identity: Identity::of_lab(topology_dir, &bytes, &files),
            topology_name,
            topology_path,
            topology: bytes,
            extra_files: files,
            reuse: true,
        })
    }

    /// The topology's path relative to the upload's root.
    pub fn topology_path(&self) -> &Path {
        &self.topology_path
    }

    /// Every file with its path relative to the upload's root, the
    /// topology first.
    pub fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        std::iter::once((self.topology_path.clone(), self.topology.clone()))
            .chain(self.extra_files.iter().cloned())
            .collect()
    }

    /// Writes the lab into `dir`, which must not exist yet: the upload's
    /// root lies a few empty folders below it ([`CONFINEMENT`]) and is named
    /// like `dir` (netlab names an unnamed lab after its folder). Returns
    /// the topology's path; netlab runs in its folder.
    pub async fn write_into(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let mut root = dir.to_path_buf();
        root.extend(CONFINEMENT);
        root.push(dir.file_name().unwrap_or("lab".as_ref()));
        let topology = root.join(&self.topology_path);
        let files: Vec<(PathBuf, Vec<u8>)> = self
            .files()
            .into_iter()
            .map(|(path, bytes)| (root.join(path), bytes))
            .collect();
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(dir.parent().unwrap_or(&dir))?;
            std::fs::create_dir(&dir)?;
            for (path, bytes) in files {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(path, bytes)?;
            }
            Ok(topology)
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// Sets its flag when dropped: the check it was handed to stops.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Accepts what pydantic accepts for a boolean form value.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests;

/// Builds checked uploads for the lab manager's unit tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    pub fn upload(name: &str, content: &str, reuse: bool) -> Upload {
        let form = Form {
            topology: vec![FilePart {
                name: Some(name.into()),
                bytes: content.as_bytes().to_vec(),
            }],
            reuse: Some(reuse.to_string()),
            extra_files: Vec::new(),
        };
        Upload::validate(form).expect("test upload is valid")
    }
}
