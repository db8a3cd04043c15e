//! A node of a running lab and its Ansible host view, kept as the JSON
//! text netlab printed.
//!
//! A host view is a few kilobytes to tens of kilobytes of JSON per node; a
//! 120-node fabric's is megabytes. Parsed into `serde_json::Value` trees it
//! took over ten times its text (measured with valgrind's massif: 4.6 MB of
//! JSON became ~60 MB of maps, one set per bring-up until it was dropped).
//! Kept as text it costs its size once, and is sent to clients as it came.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// One device: its netlab node name and host view. See the module
/// documentation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "Stored")]
pub struct Device {
    pub name: String,
    /// A JSON object: what `netlab inspect --node <name> --format json`
    /// prints.
    pub raw: Box<RawValue>,
    /// Where to reach it (`mgmt.ipv4`, else `ansible_host`), read once.
    #[serde(skip)]
    reach: Option<String>,
}

/// A device as stored (its name and host view): the address is read again.
#[derive(Deserialize)]
struct Stored {
    name: String,
    raw: Box<RawValue>,
}

impl From<Stored> for Device {
    fn from(stored: Stored) -> Self {
        Device::new(stored.name, stored.raw)
    }
}

/// The two fields of a host view that say where the device is.
#[derive(Deserialize)]
struct Reach {
    mgmt: Option<Mgmt>,
    ansible_host: Option<Value>,
}

#[derive(Deserialize)]
struct Mgmt {
    ipv4: Option<Value>,
}

impl Device {
    /// A device whose host view is the JSON object `raw`.
    pub fn new(name: String, raw: Box<RawValue>) -> Device {
        let reach = serde_json::from_str::<Reach>(raw.get())
            .ok()
            .and_then(|reach| {
                reach
                    .mgmt
                    .and_then(|mgmt| mgmt.ipv4)
                    .or(reach.ansible_host)
                    .and_then(|address| address.as_str().map(str::to_string))
            });
        Device { name, raw, reach }
    }

    /// A device whose host view is the object `raw`.
    pub fn from_map(name: String, raw: &Map<String, Value>) -> Device {
        let text = serde_json::to_string(raw).expect("a JSON object serializes");
        Device::new(name, RawValue::from_string(text).expect("serialized JSON"))
    }

    /// The same device without its host view (an empty object).
    pub fn named(&self) -> Device {
        let raw = RawValue::from_string("{}".into()).expect("an empty object");
        Device {
            name: self.name.clone(),
            raw,
            reach: None,
        }
    }

    /// Its management address: `mgmt.ipv4`, else `ansible_host`.
    pub fn reach(&self) -> Option<&str> {
        self.reach.as_deref()
    }

    /// The host view as a map (parsed on every call).
    pub fn host_view(&self) -> serde_json::Result<Map<String, Value>> {
        serde_json::from_str(self.raw.get())
    }
}

/// Same name and same host view, whatever the keys' order and spacing.
impl PartialEq for Device {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.host_view().ok() == other.host_view().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(raw: &str) -> Device {
        Device::new("r1".into(), RawValue::from_string(raw.into()).unwrap())
    }

    #[test]
    fn the_address_is_mgmt_ipv4_else_ansible_host() {
        let both = device(r#"{"ansible_host": "10.0.0.1", "mgmt": {"ipv4": "192.0.2.1"}}"#);
        assert_eq!(both.reach(), Some("192.0.2.1"));
        assert_eq!(
            device(r#"{"ansible_host": "10.0.0.1"}"#).reach(),
            Some("10.0.0.1")
        );
        assert_eq!(device("{}").reach(), None);
    }

    #[test]
    fn stored_and_read_back_it_is_the_same_device() {
        let original = device(r#"{"b": 1, "a": {"mgmt": [1, 2]}, "mgmt": {"ipv4": "192.0.2.1"}}"#);
        let stored = serde_json::to_string(&original).unwrap();
        assert_eq!(
            stored,
            r#"{"name":"r1","raw":{"b": 1, "a": {"mgmt": [1, 2]}, "mgmt": {"ipv4": "192.0.2.1"}}}"#
        );
        let back: Device = serde_json::from_str(&stored).unwrap();
        assert_eq!(back, original);
        assert_eq!(back.reach(), Some("192.0.2.1"));
        assert_eq!(device(r#"{"a":1,"b":2}"#), device(r#"{"b": 2, "a": 1}"#));
    }
}
