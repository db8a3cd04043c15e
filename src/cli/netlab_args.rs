//! netlab's flags, shared by the server and the lab agent: which netlab
//! runs, with which `netlab up` arguments and time limits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use neops_remote_lab::lab::netlab::NetlabConfig;
use neops_remote_lab::lab::provider::UpArgs;

/// How netlab is run on this host.
#[derive(Debug, Clone, Args)]
pub struct NetlabArgs {
    /// The netlab executable (default: `netlab` on PATH).
    #[arg(long, env = "NEOPS_NETLAB_BIN", default_value = "netlab")]
    pub netlab_bin: PathBuf,

    /// Extra arguments appended to every `netlab up`, separated by spaces
    /// (given empty: none). Not given: none where containerlab or libvirt
    /// (kvm-ok, virsh, vagrant) is installed, else netlab's container-free
    /// external provider, "-q --no-config -p external -s defaults.multilab.id=default".
    #[arg(long, env = "NEOPS_NETLAB_UP_ARGS", allow_hyphen_values = true)]
    pub netlab_up_args: Option<String>,

    /// Seconds `netlab up` may run before it is killed (answered with 504).
    #[arg(long, env = "NEOPS_NETLAB_UP_TIMEOUT", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub netlab_up_timeout: u64,

    /// Seconds any other netlab command may run before it is killed.
    #[arg(long, env = "NEOPS_NETLAB_TIMEOUT", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub netlab_timeout: u64,

    /// Seconds a netlab command gets between SIGTERM and SIGKILL when it is
    /// stopped (time limit, its session ended, server shutdown).
    #[arg(long, env = "NEOPS_NETLAB_KILL_GRACE", default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub netlab_kill_grace: u64,
}

impl NetlabArgs {
    /// The netlab configuration; logs which `netlab up` arguments are used
    /// and why. Errors: a `--netlab-bin` that cannot be made absolute.
    pub fn config(&self) -> Result<NetlabConfig, String> {
        let up_args = UpArgs::choose(
            self.netlab_up_args.as_deref(),
            std::env::var_os("PATH").as_deref(),
        );
        match up_args {
            UpArgs::External => tracing::warn!("{}", up_args.describe()),
            _ => tracing::info!("{}", up_args.describe()),
        }
        Ok(NetlabConfig {
            program: netlab_program(&self.netlab_bin)?,
            up_args: up_args.args(),
            up_timeout: Duration::from_secs(self.netlab_up_timeout),
            command_timeout: Duration::from_secs(self.netlab_timeout),
            kill_grace: Duration::from_secs(self.netlab_kill_grace),
            owner: None,
        })
    }
}

/// The netlab executable as netlab is run: in each lab's directory, so a
/// relative path with a directory part (`venv/bin/netlab`) is made absolute
/// against the directory the process starts in; a bare name is looked up
/// on `PATH` as given.
fn netlab_program(given: &Path) -> Result<PathBuf, String> {
    if given.is_relative() && given.components().count() > 1 {
        std::path::absolute(given)
            .map_err(|error| format!("--netlab-bin {}: {error}", given.display()))
    } else {
        Ok(given.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_netlab_bin_with_a_folder_is_made_absolute_and_a_bare_name_is_kept() {
        let program = netlab_program(Path::new("venv/bin/netlab")).unwrap();
        assert!(program.is_absolute());
        assert!(program.ends_with("venv/bin/netlab"));
        assert_eq!(
            netlab_program(Path::new("netlab")).unwrap(),
            Path::new("netlab")
        );
        assert_eq!(
            netlab_program(Path::new("/opt/x/netlab")).unwrap(),
            Path::new("/opt/x/netlab")
        );
    }
}
