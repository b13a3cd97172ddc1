//! Fuzz target: the scaling-policy parser and its validation against a cluster config, on
//! arbitrary bytes. Any input must give `Ok` or located `InputErrors`, never a panic.
#![no_main]

use elasticrds::core::config::Config;
use elasticrds::core::policy::Policy;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const CONFIG: &str = "cluster1:\n  master_node:\n    identifier: snap1\n    instance_id: cluster1m01\n    instance_class: db.t3.micro\n  replica_nodes:\n    - {id: cluster1s01, instance_class: db.t3.micro}\n    - {id: cluster1s02, instance_class: db.t3.micro}\n    - {id: cluster1s03, instance_class: db.t3.micro}\n";

fn config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| Config::parse("fuzz-config.yaml", CONFIG).expect("fixed config"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = Policy::parse("fuzz-policy.yaml", text, config()) {
        assert!(!errors.0.is_empty(), "an error result without any error");
        for e in &errors.0 {
            let _ = e.to_string();
        }
    }
});
