//! File-name rules of an upload: each name is a relative path that stays in
//! the upload's folder, fits the file system, does not collide with another
//! file or folder of the upload, and does not claim a name netlab owns.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use super::UploadError;

/// Longest accepted name of one file or folder, in bytes (Linux `NAME_MAX`).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// Longest accepted relative path, in bytes. Linux refuses paths over
/// `PATH_MAX` (4096) bytes; the lab's own directory comes in front of the
/// uploaded path, so an upload keeps well clear of that.
pub const MAX_PATH_BYTES: usize = 1024;

/// Names netlab owns in the folder it runs in: what `netlab up` writes
/// there and `netlab down --cleanup` removes. Source: networklab 26.10,
/// `netsim/defaults/automation.yml` (`ansible.cfg`, `hosts.yml`,
/// `group_vars`, `host_vars`, `node_files`), the providers' `cleanup` lists
/// in `netsim/providers/*.yml` (`external.txt`, `clab.yml`, `clab_files`,
/// `Vagrantfile`), `netsim/providers/clab/labops.py` (`clab-augment.yml`),
/// `netsim/utils/status.py` (`netlab.lock`, whose presence makes `up`
/// refuse) and `netsim/cli/down.py` (`netlab.snapshot.yml`,
/// `netlab.snapshot.pickle`, which netlab unpickles: an uploaded one would
/// run code). Every `netlab.snapshot.*` name is refused, see
/// [`netlab_owns`].
pub const NETLAB_OWNED: &[&str] = &[
    "netlab.lock",
    "ansible.cfg",
    "hosts.yml",
    "group_vars",
    "host_vars",
    "node_files",
    "external.txt",
    "clab.yml",
    "clab-augment.yml",
    "clab_files",
    "Vagrantfile",
];

const SNAPSHOT_PREFIX: &str = "netlab.snapshot.";

fn netlab_owns(name: &str) -> bool {
    NETLAB_OWNED.contains(&name) || name.starts_with(SNAPSHOT_PREFIX)
}

fn refuse<T>(name: &str, why: impl std::fmt::Display) -> Result<T, UploadError> {
    Err(UploadError::Invalid(format!("File name {name:?} {why}")))
}

/// Turns an uploaded file name into a relative path that cannot leave the
/// upload's folder: no absolute names, no `..`, no empty names, no NUL
/// bytes, no backslashes, and within [`MAX_COMPONENT_BYTES`] and
/// [`MAX_PATH_BYTES`].
pub(super) fn confined_path(name: &str) -> Result<PathBuf, UploadError> {
    if name.is_empty() {
        return refuse(name, "is empty");
    }
    if name.contains('\0') {
        return refuse(name, "contains a NUL byte");
    }
    if name.starts_with('/') {
        return refuse(
            name,
            "is absolute; send names relative to the upload's root folder",
        );
    }
    if name.contains('\\') {
        return refuse(name, "contains a backslash; separate folders with '/'");
    }
    if name.ends_with('/') {
        return refuse(name, "names a folder, not a file");
    }
    let mut path = PathBuf::new();
    for component in Path::new(name).components() {
        match component {
            Component::Normal(part) if part.len() > MAX_COMPONENT_BYTES => {
                return refuse(
                    name,
                    format_args!(
                        "has a part of {} bytes; at most {MAX_COMPONENT_BYTES} are allowed",
                        part.len()
                    ),
                );
            }
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            Component::ParentDir => return refuse(name, "contains a '..' segment"),
            Component::RootDir | Component::Prefix(_) => return refuse(name, "is absolute"),
        }
    }
    if path.as_os_str().is_empty() {
        return refuse(name, "names no file");
    }
    if path.as_os_str().len() > MAX_PATH_BYTES {
        return refuse(
            name,
            format_args!(
                "is {} bytes long; at most {MAX_PATH_BYTES} are allowed",
                path.as_os_str().len()
            ),
        );
    }
    Ok(path)
}

/// Checks the upload as a whole: every path names one file, no file is
/// also a folder of another path (in either order, the topology included),
/// and nothing in the topology's folder claims a name netlab owns.
pub(super) fn check_layout<'a>(
    topology: &Path,
    extra_files: impl Iterator<Item = &'a Path>,
) -> Result<(), UploadError> {
    let topology_dir = topology.parent().unwrap_or(Path::new(""));
    if let Some(name) = topology.file_name().map(|name| name.to_string_lossy())
        && netlab_owns(&name)
    {
        return refuse(
            &topology.display().to_string(),
            "is a name netlab writes in the topology's folder; rename the topology",
        );
    }
    let mut files: HashSet<&Path> = HashSet::from([topology]);
    let mut folders: HashSet<&Path> = topology.ancestors().skip(1).collect();
    for path in extra_files {
        let shown = path.display();
        if !files.insert(path) {
            return refuse(
                &shown.to_string(),
                "is sent twice (or is the topology's own path)",
            );
        }
        if folders.contains(path) {
            return refuse(
                &shown.to_string(),
                "is a file, but another upload path uses it as a folder",
            );
        }
        for folder in path.ancestors().skip(1) {
            if files.contains(folder) {
                return refuse(
                    &shown.to_string(),
                    format_args!(
                        "uses {:?} as a folder, but that is a file of the upload",
                        folder.display().to_string()
                    ),
                );
            }
            folders.insert(folder);
        }
        if let Ok(inside) = path.strip_prefix(topology_dir)
            && let Some(Component::Normal(first)) = inside.components().next()
            && netlab_owns(&first.to_string_lossy())
        {
            return refuse(
                &shown.to_string(),
                format_args!(
                    "claims {:?}, a name netlab writes in the topology's folder",
                    first.to_string_lossy()
                ),
            );
        }
    }
    Ok(())
}
