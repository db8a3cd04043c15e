//! `POST /lab` uploads: the multipart form read within a size limit, every
//! file name confined to the lab's own directory, the topology checked to be
//! YAML before netlab ever sees it, and the files written out on demand.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use axum::extract::Multipart;
use sha2::{Digest, Sha256};

/// A topology's identity: the SHA-256 of its bytes, never its file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity(String);

impl Identity {
    pub fn of(bytes: &[u8]) -> Self {
        let digest = Sha256::digest(bytes);
        Identity(digest.iter().map(|byte| format!("{byte:02x}")).collect())
    }

    /// A short prefix, enough to tell labs apart in logs and directory names.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
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
}

/// A validated upload, still in memory.
#[derive(Debug)]
pub struct Upload {
    /// The topology's file name, without any folder part.
    pub topology_name: String,
    topology: Vec<u8>,
    extra_files: Vec<(PathBuf, Vec<u8>)>,
    pub identity: Identity,
    pub reuse: bool,
}

/// A file part as it arrived, before any rule was applied.
struct RawFile {
    name: Option<String>,
    bytes: Vec<u8>,
}

/// The form as it arrived.
#[derive(Default)]
struct RawForm {
    topology: Vec<RawFile>,
    reuse: Option<String>,
    extra_files: Vec<RawFile>,
}

impl Upload {
    /// Reads the whole form, refusing it as soon as it exceeds `limit` bytes
    /// of file and field content, then applies every rule.
    pub async fn read(mut multipart: Multipart, limit: u64) -> Result<Upload, UploadError> {
        let mut form = RawForm::default();
        let mut total: u64 = 0;
        while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
            let field_name = field.name().unwrap_or_default().to_string();
            let file_name = field.file_name().map(str::to_string);
            let mut bytes = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                total += chunk.len() as u64;
                if total > limit {
                    return Err(UploadError::TooLarge { limit });
                }
                bytes.extend_from_slice(&chunk);
            }
            let file = RawFile {
                name: file_name,
                bytes,
            };
            match field_name.as_str() {
                "topology" => form.topology.push(file),
                "extra_files" => form.extra_files.push(file),
                "reuse" => form.reuse = Some(String::from_utf8_lossy(&file.bytes).into_owned()),
                _ => {} // Unknown fields are ignored, as the original did.
            }
        }
        Upload::validate(form)
    }

    /// Rules in the contract's order: form fields (422), then the file
    /// extension, names and content (400).
    fn validate(form: RawForm) -> Result<Upload, UploadError> {
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
        let topology_path = confined_path(&topology_file_name)?;
        let topology_name = topology_path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .ok_or_else(|| UploadError::Invalid("Topology file name names no file".into()))?;

        let mut seen = HashSet::from([PathBuf::from(&topology_name)]);
        let mut extra_files = Vec::with_capacity(form.extra_files.len());
        for file in form.extra_files {
            let name = file
                .name
                .ok_or_else(|| UploadError::Invalid("Extra file must have a filename".into()))?;
            let path = confined_path(&name)?;
            if !seen.insert(path.clone()) {
                return Err(UploadError::Invalid(format!(
                    "Extra file {name:?} is sent twice or would overwrite the topology"
                )));
            }
            extra_files.push((path, file.bytes));
        }

        check_topology_yaml(&topology.bytes)?;
        Ok(Upload {
            identity: Identity::of(&topology.bytes),
            topology_name,
            topology: topology.bytes,
            extra_files,
            reuse,
        })
    }

    /// Writes the topology and the extra files into `dir`, which must not
    /// exist yet. Returns the topology's path.
    pub async fn write_into(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let dir = dir.to_path_buf();
        let topology = dir.join(&self.topology_name);
        let mut files = vec![(topology.clone(), self.topology.clone())];
        files.extend(
            self.extra_files
                .iter()
                .map(|(path, bytes)| (dir.join(path), bytes.clone())),
        );
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

/// A body that does not parse as multipart (a NUL byte in a header, say) is
/// a bad request, as the original's form parser answered.
fn malformed(error: axum::extract::multipart::MultipartError) -> UploadError {
    UploadError::Invalid(format!("malformed multipart body: {}", error.body_text()))
}

/// Accepts what pydantic accepts for a boolean form value.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// Turns an uploaded file name into a relative path that cannot leave the
/// lab directory: no absolute names, no `..`, no empty names, no NUL bytes.
fn confined_path(name: &str) -> Result<PathBuf, UploadError> {
    let refuse = |why: &str| Err(UploadError::Invalid(format!("File name {name:?} {why}")));
    if name.is_empty() {
        return refuse("is empty");
    }
    if name.contains('\0') {
        return refuse("contains a NUL byte");
    }
    if name.starts_with('/') {
        return refuse("is absolute; send names relative to the topology's folder");
    }
    if name.contains('\\') {
        return refuse("contains a backslash; separate folders with '/'");
    }
    if name.ends_with('/') {
        return refuse("names a folder, not a file");
    }
    let mut path = PathBuf::new();
    for component in Path::new(name).components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            Component::ParentDir => return refuse("contains a '..' segment"),
            Component::RootDir | Component::Prefix(_) => return refuse("is absolute"),
        }
    }
    if path.as_os_str().is_empty() {
        return refuse("names no file");
    }
    Ok(path)
}

fn check_topology_yaml(bytes: &[u8]) -> Result<(), UploadError> {
    let invalid = |why: String| Err(UploadError::Invalid(why));
    match yaml_serde::from_slice::<yaml_serde::Value>(bytes) {
        Err(error) => invalid(format!("Topology is not valid YAML: {error}")),
        Ok(yaml_serde::Value::Null) => invalid("Topology is empty".into()),
        Ok(yaml_serde::Value::Mapping(_)) => Ok(()),
        Ok(_) => invalid("Topology must be a YAML mapping (nodes:, links:, …)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, bytes: &str) -> RawFile {
        RawFile {
            name: Some(name.into()),
            bytes: bytes.as_bytes().to_vec(),
        }
    }

    fn form(topology: &str, extras: &[&str]) -> RawForm {
        RawForm {
            topology: vec![file(topology, "nodes: [r1]\n")],
            reuse: None,
            extra_files: extras.iter().map(|name| file(name, "x")).collect(),
        }
    }

    fn invalid(result: Result<Upload, UploadError>) -> String {
        match result {
            Err(UploadError::Invalid(message)) => message,
            other => panic!("expected 400, got {other:?}"),
        }
    }

    #[test]
    fn names_that_leave_the_directory_are_refused() {
        for name in [
            "/etc/passwd",
            "../x.cfg",
            "configs/../../x",
            "",
            "a\0b",
            "dir/",
            "..",
            ".",
        ] {
            let message = invalid(Upload::validate(form("t.yml", &[name])));
            assert!(message.starts_with("File name"), "{name:?}: {message}");
        }
    }

    #[test]
    fn folders_inside_the_directory_are_kept() {
        let upload =
            Upload::validate(form("t.yml", &["configs/init.cfg", "./templates/t.j2"])).unwrap();
        let paths: Vec<&Path> = upload
            .extra_files
            .iter()
            .map(|(p, _)| p.as_path())
            .collect();
        assert_eq!(
            paths,
            [Path::new("configs/init.cfg"), Path::new("templates/t.j2")]
        );
        assert!(upload.reuse, "reuse defaults to true");
    }

    #[test]
    fn topology_extension_is_checked_case_insensitively() {
        for name in ["a.yml", "a.yaml", "a.YML", "a.YAML"] {
            assert!(Upload::validate(form(name, &[])).is_ok(), "{name}");
        }
        let message = invalid(Upload::validate(form("a.json", &[])));
        assert!(message.starts_with("Topology must be a"));
    }

    #[test]
    fn topology_keeps_only_its_base_name() {
        let upload = Upload::validate(form("labs/t.yml", &[])).unwrap();
        assert_eq!(upload.topology_name, "t.yml");
    }

    #[test]
    fn missing_topology_is_a_form_error_even_before_bad_names() {
        let raw = RawForm {
            extra_files: vec![file("../x", "")],
            ..RawForm::default()
        };
        assert!(matches!(Upload::validate(raw), Err(UploadError::Form(_))));
    }

    #[test]
    fn empty_or_broken_yaml_is_refused_with_the_parser_message() {
        for (content, expected) in [
            ("", "Topology is empty"),
            ("# only a comment\n", "Topology is empty"),
            ("nodes: [r1\n", "Topology is not valid YAML"),
            ("- r1\n- r2\n", "Topology must be a YAML mapping"),
        ] {
            let raw = RawForm {
                topology: vec![file("t.yml", content)],
                ..RawForm::default()
            };
            let message = invalid(Upload::validate(raw));
            assert!(message.starts_with(expected), "{content:?}: {message}");
        }
    }

    #[test]
    fn extra_file_may_not_replace_the_topology_or_repeat() {
        invalid(Upload::validate(form("t.yml", &["t.yml"])));
        invalid(Upload::validate(form("t.yml", &["a/b", "a/./b"])));
    }

    #[test]
    fn reuse_accepts_pydantic_booleans() {
        for (text, value) in [("true", true), ("0", false), ("Yes", true), ("OFF", false)] {
            assert_eq!(parse_bool(text), Some(value));
        }
        let raw = RawForm {
            reuse: Some("maybe".into()),
            ..form("t.yml", &[])
        };
        assert!(matches!(Upload::validate(raw), Err(UploadError::Form(_))));
    }

    #[test]
    fn identity_is_the_sha256_of_the_bytes() {
        assert_eq!(
            Identity::of(b"abc").to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn writes_files_under_their_relative_paths() {
        let root = tempfile::tempdir().unwrap();
        let upload = Upload::validate(form("t.yml", &["configs/init.cfg"])).unwrap();
        let dir = root.path().join("lab");
        let topology = upload.write_into(&dir).await.unwrap();
        assert_eq!(topology, dir.join("t.yml"));
        assert_eq!(
            std::fs::read_to_string(dir.join("configs/init.cfg")).unwrap(),
            "x"
        );
    }
}

/// Builds validated uploads for the lab manager's unit tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    pub fn upload(name: &str, content: &str, reuse: bool) -> Upload {
        let form = RawForm {
            topology: vec![RawFile {
                name: Some(name.into()),
                bytes: content.as_bytes().to_vec(),
            }],
            reuse: Some(reuse.to_string()),
            extra_files: Vec::new(),
        };
        Upload::validate(form).expect("test upload is valid")
    }
}
