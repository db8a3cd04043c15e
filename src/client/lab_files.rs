//! A lab upload: the topology, its companion files, and the names the
//! server stores them under (see the README's "Lab folders"). The rules are
//! the Python client's, so both send the same lab the same way.

use std::path::{Component, Path, PathBuf};

use reqwest::multipart::{Form, Part};

use super::error::{Error, Result};

/// The files of one upload, each named by its `/`-separated path relative
/// to the upload's root.
#[derive(Debug, Clone)]
pub struct LabFiles {
    root: PathBuf,
    topology: PathBuf,
    extra: Vec<(String, PathBuf)>,
}

impl LabFiles {
    /// Finds the files and the upload's root.
    ///
    /// `topology` is relative to the working directory. `extra` are files
    /// or folders (a folder stands for every file below it, in name order)
    /// and `root` a folder, each relative to the topology's folder unless
    /// absolute. The root is `root` when given; otherwise the topology's
    /// folder when every extra file lies inside it (the topology is then
    /// sent under its bare name), else the deepest folder holding them all.
    /// Paths are normalized without following symlinks, so a link inside
    /// the lab keeps its place in the lab.
    ///
    /// Errors: [`Error::LabFile`] for a missing file or one outside `root`.
    pub fn collect(
        topology: impl AsRef<Path>,
        extra: &[PathBuf],
        root: Option<&Path>,
    ) -> Result<LabFiles> {
        let cwd = std::env::current_dir().map_err(|error| Error::LabFile {
            path: PathBuf::from("."),
            message: error.to_string(),
        })?;
        let topology = normalize(&cwd.join(topology));
        if !topology.is_file() {
            return Err(missing(&topology, "topology not found"));
        }
        let folder = topology.parent().unwrap_or(Path::new("/")).to_path_buf();
        let mut files = Vec::new();
        for entry in extra {
            let path = normalize(&folder.join(entry));
            if path.is_dir() {
                files.extend(files_below(&path)?);
            } else if path.is_file() {
                files.push(path);
            } else {
                return Err(missing(&path, "extra file not found"));
            }
        }
        let mut seen = std::collections::HashSet::new();
        files.retain(|file| *file != topology && seen.insert(file.clone()));
        let root = match root {
            Some(root) => normalize(&folder.join(root)),
            None => files.iter().fold(folder, |base, file| common(&base, file)),
        };
        let name = |file: &Path| -> Result<String> {
            let relative = file.strip_prefix(&root).map_err(|_| {
                missing(
                    file,
                    &format!("outside the upload's root {}", root.display()),
                )
            })?;
            Ok(relative.to_string_lossy().replace('\\', "/"))
        };
        name(&topology)?;
        let extra = files
            .into_iter()
            .map(|file| Ok((name(&file)?, file)))
            .collect::<Result<_>>()?;
        Ok(LabFiles {
            root,
            topology,
            extra,
        })
    }

    /// The topology's name in the upload: its path relative to the root.
    pub fn topology_name(&self) -> String {
        relative(&self.topology, &self.root)
    }

    /// The extra files' names in the upload, in the order they are sent.
    pub fn extra_names(&self) -> impl Iterator<Item = &str> {
        self.extra.iter().map(|(name, _)| name.as_str())
    }

    /// The multipart form of `POST /lab`, read now: every attempt sends the
    /// files' current bytes.
    pub(crate) fn form(&self, reuse: bool) -> Result<Form> {
        let mut form = Form::new()
            .part("topology", part(&self.topology, self.topology_name())?)
            .text("reuse", reuse.to_string());
        for (name, path) in &self.extra {
            form = form.part("extra_files", part(path, name.clone())?);
        }
        Ok(form)
    }
}

fn part(path: &Path, name: String) -> Result<Part> {
    let bytes = std::fs::read(path).map_err(|error| missing(path, &error.to_string()))?;
    Ok(Part::bytes(bytes).file_name(name))
}

fn missing(path: &Path, message: &str) -> Error {
    Error::LabFile {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn relative(path: &Path, root: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative.to_string_lossy().replace('\\', "/")
}

/// Every file below `dir`, sorted by path.
fn files_below(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|error| missing(&dir, &error.to_string()))?;
        for entry in entries {
            let path = entry
                .map_err(|error| missing(&dir, &error.to_string()))?
                .path();
            if path.is_dir() {
                pending.push(path);
            } else if path.is_file() {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// `path` with `.` and `..` resolved lexically (as Python's `normpath`).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The deepest folder holding `base` and `file`'s folder.
fn common(base: &Path, file: &Path) -> PathBuf {
    base.components()
        .zip(file.parent().unwrap_or(file).components())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, name: &str) {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, name).unwrap();
    }

    #[test]
    fn files_inside_the_topology_folder_keep_a_bare_topology_name() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "lab/topology.yml");
        write(dir.path(), "lab/configs/r1.cfg");
        write(dir.path(), "lab/configs/r2.cfg");
        let lab = LabFiles::collect(
            dir.path().join("lab/topology.yml"),
            &[PathBuf::from("configs")],
            None,
        )
        .unwrap();
        assert_eq!(lab.topology_name(), "topology.yml");
        let names: Vec<_> = lab.extra_names().collect();
        assert_eq!(names, ["configs/r1.cfg", "configs/r2.cfg"]);
    }

    #[test]
    fn a_shared_file_above_moves_the_root_up() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "labs/basic/topology.yml");
        write(dir.path(), "defaults.yml");
        let lab = LabFiles::collect(
            dir.path().join("labs/basic/topology.yml"),
            &[PathBuf::from("../../defaults.yml")],
            None,
        )
        .unwrap();
        assert_eq!(lab.topology_name(), "labs/basic/topology.yml");
        assert_eq!(lab.extra_names().collect::<Vec<_>>(), ["defaults.yml"]);
    }

    #[test]
    fn missing_files_and_files_outside_the_root_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "lab/topology.yml");
        write(dir.path(), "other.yml");
        let topology = dir.path().join("lab/topology.yml");
        let missing = LabFiles::collect(&topology, &[PathBuf::from("nope.cfg")], None);
        assert!(matches!(missing, Err(Error::LabFile { .. })));
        let outside = LabFiles::collect(
            &topology,
            &[PathBuf::from("../other.yml")],
            Some(Path::new(".")),
        );
        assert!(
            outside
                .unwrap_err()
                .to_string()
                .contains("outside the upload's root")
        );
    }
}
