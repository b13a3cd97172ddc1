//! Fuzz target: the cluster config parser (JSON with comments and YAML) on arbitrary bytes.
//! Any input must give `Ok` or located `InputErrors`, never a panic.
#![no_main]

use elasticrds::core::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for file in ["fuzz.json", "fuzz.yaml", "fuzz"] {
        if let Err(errors) = Config::parse(file, text) {
            assert!(!errors.0.is_empty(), "an error result without any error");
            for e in &errors.0 {
                assert_eq!(e.file, file);
                let _ = e.to_string();
            }
        }
    }
});
