//! A run configuration's text: parsing and validation never panic, and an
//! error always says something.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match zftrain::config::RunConfig::from_toml(text, "fuzz.toml") {
        Ok(mut config) => {
            config.data.train = std::env::temp_dir();
            config.data.val = std::env::temp_dir();
            if let Err(e) = config.validate() {
                assert!(!format!("{e:#}").is_empty());
            }
            // What was accepted writes back as TOML that reads the same.
            let again = zftrain::config::RunConfig::from_toml(&config.to_toml(), "again")
                .expect("a written configuration reads back");
            assert_eq!(again.to_toml(), config.to_toml());
        }
        Err(e) => assert!(!format!("{e:#}").is_empty()),
    }
});
