//! An OpenSSH client configuration (`ssh_config(5)`) for a running lab:
//! one `Host` per device, reached through its lab host with `ProxyJump`,
//! as netlab's own `ssh_config` report writes its `<node>.ssh` entries
//! (networklab 26.10, `netsim/reports/ssh_config.j2`): the device's
//! `ansible_host` and `ansible_user`, host keys not checked. As there, only
//! devices netlab reaches over SSH get an entry.

use std::fmt::Write as _;

use serde::Deserialize;

use crate::domain::Device;

/// The Ansible connections netlab's report treats as SSH.
const SSH_CONNECTIONS: [&str; 4] = ["paramiko", "netconf", "paramiko_ssh", "network_cli"];

/// The fields of a host view the entry needs.
#[derive(Deserialize)]
struct HostView {
    ansible_host: Option<String>,
    ansible_user: Option<String>,
    ansible_connection: Option<String>,
}

/// The lab host every device is reached through.
#[derive(Debug, Clone)]
pub struct Jump {
    /// The `Host` name the devices' `ProxyJump` refers to.
    pub alias: String,
    /// Where that host is (`HostName`).
    pub address: String,
}

/// Whether `value` can stand in ssh_config as one plain token: letters,
/// digits and `.-_:%`, as host names, IPv4/IPv6 addresses and user names
/// have them. Anything else (spaces, newlines, quotes, `#`) could add
/// options of its own, such as a `ProxyCommand` that runs on the client,
/// so it is never written.
pub fn is_plain(value: &str) -> bool {
    (1..=253).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '%'))
}

/// The configuration for `devices` behind `jump`; `title` heads it as a
/// comment (one line). A device whose name, address or user is not
/// [`is_plain`] gets no entry; a `jump` that is not, no entries at all.
pub fn render(title: &str, jump: &Jump, devices: &[Device]) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "# {}", title.replace(|c: char| c.is_control(), " "));
    text.push_str(
        "# Save it and `Include` it in ~/.ssh/config, or use `ssh -F <file> <device>`.\n\n",
    );
    if !is_plain(&jump.alias) || !is_plain(&jump.address) {
        text.push_str("# The lab host's name or address cannot be written here safely.\n");
        return text;
    }
    let _ = write!(
        text,
        "Host {}\n  HostName {}\n  StrictHostKeyChecking off\n  UserKnownHostsFile /dev/null\n\n",
        jump.alias, jump.address
    );
    for device in devices {
        let view: Option<HostView> = serde_json::from_str(device.raw.get()).ok();
        let Some(view) = view.filter(|view| {
            (view.ansible_connection.as_deref()).is_some_and(|c| SSH_CONNECTIONS.contains(&c))
        }) else {
            if is_plain(&device.name) {
                let _ = writeln!(text, "# {}: not reached over SSH\n", device.name);
            }
            continue;
        };
        let Some(address) = view.ansible_host else {
            if is_plain(&device.name) {
                let _ = writeln!(text, "# {}: no address (ansible_host)\n", device.name);
            }
            continue;
        };
        let user_is_plain = view.ansible_user.as_deref().is_none_or(is_plain);
        if !is_plain(&device.name) || !is_plain(&address) || !user_is_plain {
            text.push_str(
                "# A device whose name, address or user cannot be written here safely.\n\n",
            );
            continue;
        }
        let _ = writeln!(text, "Host {}\n  HostName {address}", device.name);
        if let Some(user) = view.ansible_user {
            let _ = writeln!(text, "  User {user}");
        }
        let _ = write!(
            text,
            "  ProxyJump {}\n  StrictHostKeyChecking off\n  UserKnownHostsFile /dev/null\n\n",
            jump.alias
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn device(name: &str, raw: &str) -> Device {
        Device::new(name.into(), RawValue::from_string(raw.into()).unwrap())
    }

    #[test]
    fn each_ssh_device_is_reached_through_the_lab_host() {
        let jump = Jump {
            alias: "lab-b".into(),
            address: "lab-b.example.net".into(),
        };
        let devices = [
            device(
                "r1",
                r#"{"ansible_host":"192.168.2.101","ansible_user":"vagrant","ansible_connection":"network_cli"}"#,
            ),
            device(
                "h1",
                r#"{"ansible_host":"192.168.2.103","ansible_connection":"docker"}"#,
            ),
        ];
        let text = render("lab x", &jump, &devices);
        assert!(text.starts_with("# lab x\n"), "{text}");
        assert!(
            text.contains("Host lab-b\n  HostName lab-b.example.net\n"),
            "{text}"
        );
        assert!(
            text.contains("Host r1\n  HostName 192.168.2.101\n  User vagrant\n  ProxyJump lab-b\n"),
            "{text}"
        );
        assert!(text.contains("# h1: not reached over SSH"), "{text}");
        assert!(!text.contains("Host h1"), "{text}");
    }

    #[test]
    fn nothing_that_could_add_an_option_is_written() {
        let jump = Jump {
            alias: "lab-b".into(),
            address: "lab-b".into(),
        };
        let devices = [
            device(
                "r1",
                r#"{"ansible_host":"10.0.0.1\n  ProxyCommand touch /tmp/x","ansible_connection":"network_cli"}"#,
            ),
            device(
                "r2",
                r#"{"ansible_host":"10.0.0.2","ansible_user":"x\nLocalCommand id","ansible_connection":"network_cli"}"#,
            ),
            device(
                "r3 ProxyCommand",
                r#"{"ansible_host":"10.0.0.3","ansible_connection":"network_cli"}"#,
            ),
        ];
        let text = render("lab\nProxyCommand x", &jump, &devices);
        for bad in ["ProxyCommand", "LocalCommand", "Host r"] {
            let found = text.lines().any(|line| line.trim_start().starts_with(bad));
            assert!(!found, "{bad}: {text}");
        }
        let hostile = Jump {
            alias: "a4".into(),
            address: "a4.example\n  ProxyCommand touch /tmp/x".into(),
        };
        let text = render("lab", &hostile, &devices);
        assert!(!text.contains("ProxyCommand touch"), "{text}");
        assert!(!text.contains("\nHost "), "{text}");
    }
}
