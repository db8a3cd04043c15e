//! Which netlab provider labs come up with when the operator did not say.
//!
//! netlab brings a lab up with a *provider*: containerlab (`clab`), libvirt
//! (Vagrant and KVM), or `external`, which starts nothing and takes the
//! devices as given. On a machine with neither containerlab nor libvirt, a
//! plain `netlab up` fails its provider probe ("KVM is not installed …"), so
//! there the server passes [`EXTERNAL_UP_ARGS`] itself, and the whole flow runs
//! for real without containers. Where any of those tools is installed the
//! operator most likely means to use it (a half-installed libvirt must fail
//! loudly, not quietly give labs without devices), so nothing is added.
//! An explicit `--netlab-up-args` / `NEOPS_NETLAB_UP_ARGS`, even an empty
//! one, always wins.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// `netlab up` arguments for the container-free `external` provider: `-q`
/// (no prompt, which would crash with stdin closed), `--no-config` (no
/// Ansible), and the instance id `default`, which the original server
/// assumed (the external provider would name it `external_<name>`).
pub const EXTERNAL_UP_ARGS: &[&str] = &[
    "-q",
    "--no-config",
    "-p",
    "external",
    "-s",
    "defaults.multilab.id=default",
];

/// The executables netlab's own provider probes run first, by provider
/// (networklab 26.10, `netsim/providers/clab.yml` and `libvirt.yml`, `probe:`).
/// libvirt's probe also accepts `/usr/sbin/kvm-ok`, outside a user's `PATH`.
const PROVIDER_TOOLS: &[(&str, &[&str])] = &[
    ("containerlab", &["containerlab"]),
    ("libvirt", &["kvm-ok", "virsh", "vagrant"]),
];
const KVM_OK_SBIN: &str = "/usr/sbin/kvm-ok";

/// The `netlab up` arguments in force and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpArgs {
    /// Given by `--netlab-up-args` / `NEOPS_NETLAB_UP_ARGS`.
    Explicit(Vec<String>),
    /// Tools of a provider were found: netlab picks the provider as usual.
    /// `(provider, executable)` pairs, in [`PROVIDER_TOOLS`] order.
    ProviderFound(Vec<(&'static str, PathBuf)>),
    /// No provider's tools were found: [`EXTERNAL_UP_ARGS`].
    External,
}

impl UpArgs {
    /// Decides from the explicit setting (`None`: not given) and the
    /// directories of `PATH`.
    pub fn choose(explicit: Option<&str>, path: Option<&OsStr>) -> UpArgs {
        if let Some(text) = explicit {
            return UpArgs::Explicit(text.split_whitespace().map(str::to_string).collect());
        }
        let dirs: Vec<PathBuf> = path
            .map(|p| std::env::split_paths(p).collect())
            .unwrap_or_default();
        let mut found = Vec::new();
        for (provider, tools) in PROVIDER_TOOLS {
            for tool in *tools {
                let hit = dirs
                    .iter()
                    .map(|dir| dir.join(tool))
                    .find(|p| is_executable(p));
                let hit = hit.or_else(|| {
                    (*tool == "kvm-ok")
                        .then(|| PathBuf::from(KVM_OK_SBIN))
                        .filter(|p| is_executable(p))
                });
                if let Some(executable) = hit {
                    found.push((*provider, executable));
                }
            }
        }
        if found.is_empty() {
            UpArgs::External
        } else {
            UpArgs::ProviderFound(found)
        }
    }

    /// The arguments appended to every `netlab up`.
    pub fn args(&self) -> Vec<String> {
        match self {
            UpArgs::Explicit(args) => args.clone(),
            UpArgs::ProviderFound(_) => Vec::new(),
            UpArgs::External => EXTERNAL_UP_ARGS.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// One line for the start-up log.
    pub fn describe(&self) -> String {
        match self {
            UpArgs::Explicit(args) if args.is_empty() => {
                "netlab up: no extra arguments (--netlab-up-args / NEOPS_NETLAB_UP_ARGS set empty); \
                 netlab picks the provider"
                    .to_string()
            }
            UpArgs::Explicit(args) => format!(
                "netlab up: arguments `{}` from --netlab-up-args / NEOPS_NETLAB_UP_ARGS",
                args.join(" ")
            ),
            UpArgs::ProviderFound(found) => {
                let tools: Vec<String> = found
                    .iter()
                    .map(|(provider, path)| format!("{provider} ({})", path.display()))
                    .collect();
                format!(
                    "netlab provider tools found: {}; netlab up runs with the provider the \
                     topology or netlab's defaults name (set --netlab-up-args / \
                     NEOPS_NETLAB_UP_ARGS to choose)",
                    tools.join(", ")
                )
            }
            UpArgs::External => format!(
                "no netlab provider is installed (none of containerlab, kvm-ok, virsh, vagrant on \
                 PATH): labs come up with netlab's container-free 'external' provider, which \
                 starts no devices (netlab up {}); set --netlab-up-args / NEOPS_NETLAB_UP_ARGS \
                 to choose another",
                EXTERNAL_UP_ARGS.join(" ")
            ),
        }
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// The errors netlab's provider probes print when a provider's tools are
/// missing or unusable (the same `probe:` lists as [`PROVIDER_TOOLS`]).
const MISSING_PROVIDER_MESSAGES: &[&str] = &[
    "KVM is not installed",
    "KVM is not enabled",
    "libvirt is not installed",
    "vagrant is not installed",
    "vagrant-libvirt plugin is not installed",
    "Containerlab is not installed",
    "Cannot run 'docker version'",
];

/// A hint for a failed netlab command whose output says that its provider
/// is missing, `None` for any other output.
pub fn missing_provider_hint(output: &[String]) -> Option<String> {
    let names_missing_provider = output
        .iter()
        .any(|line| MISSING_PROVIDER_MESSAGES.iter().any(|m| line.contains(m)));
    names_missing_provider.then(|| {
        format!(
            "Hint: the netlab provider for this lab is not installed on the lab host. Install it \
             (containerlab, or libvirt with Vagrant: see netlab's documentation), or bring labs \
             up with the container-free 'external' provider, which starts no devices: run the \
             server with NEOPS_NETLAB_UP_ARGS=\"{}\" (or leave --netlab-up-args and \
             NEOPS_NETLAB_UP_ARGS unset on a host without any provider: the server then picks \
             it by itself).",
            EXTERNAL_UP_ARGS.join(" ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn bin_dir(tools: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for tool in tools {
            let path = dir.path().join(tool);
            std::fs::write(&path, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    }

    #[test]
    fn no_provider_tool_means_external() {
        let dir = bin_dir(&["netlab", "docker"]);
        let choice = UpArgs::choose(None, Some(dir.path().as_os_str()));
        if Path::new(KVM_OK_SBIN).exists() {
            // libvirt's kvm-ok outside PATH counts too, as in netlab's probe.
            assert!(matches!(choice, UpArgs::ProviderFound(_)), "{choice:?}");
            return;
        }
        assert_eq!(choice, UpArgs::External);
        assert_eq!(choice.args(), EXTERNAL_UP_ARGS);
        assert!(choice.describe().contains("'external' provider"));
    }

    #[test]
    fn any_provider_tool_leaves_netlab_up_alone() {
        for tool in ["containerlab", "virsh", "vagrant", "kvm-ok"] {
            let dir = bin_dir(&[tool]);
            let choice = UpArgs::choose(None, Some(dir.path().as_os_str()));
            let UpArgs::ProviderFound(found) = &choice else {
                panic!("{tool}: {choice:?}");
            };
            assert_eq!(found[0].1, dir.path().join(tool));
            assert!(choice.args().is_empty());
            assert!(choice.describe().contains(tool), "{}", choice.describe());
        }
    }

    #[test]
    fn a_file_that_is_not_executable_is_no_tool() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("containerlab"), "").unwrap();
        let choice = UpArgs::choose(None, Some(dir.path().as_os_str()));
        assert!(
            !matches!(choice, UpArgs::ProviderFound(ref f) if f.iter().any(|(p, _)| *p == "containerlab"))
        );
    }

    #[test]
    fn an_explicit_setting_wins_even_empty() {
        let empty = bin_dir(&[]);
        let choice = UpArgs::choose(Some(""), Some(empty.path().as_os_str()));
        assert_eq!(choice, UpArgs::Explicit(vec![]));
        assert!(choice.args().is_empty());
        let clab = bin_dir(&["containerlab"]);
        let choice = UpArgs::choose(Some("-p  external -q"), Some(clab.path().as_os_str()));
        assert_eq!(choice.args(), ["-p", "external", "-q"]);
    }

    #[test]
    fn a_missing_provider_gets_a_hint_other_failures_do_not() {
        let kvm =
            vec!["[FATAL]   KVM is not installed or does not include kvm-ok utility".to_string()];
        let hint = missing_provider_hint(&kvm).unwrap();
        assert!(hint.contains("-p external"), "{hint}");
        assert!(missing_provider_hint(&["Containerlab is not installed".to_string()]).is_some());
        assert!(missing_provider_hint(&["Invalid node name r/1".to_string()]).is_none());
    }
}
