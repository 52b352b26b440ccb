//! A checkpoint manifest's bytes: never a panic; whatever is accepted names
//! only plain files inside the checkpoint directory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zftrain_checkpoints::checkpoint::Manifest;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz/manifest.json");
    if let Ok(m) = Manifest::parse(data, path) {
        for name in m.files.keys() {
            assert!(!name.contains('/') && name != ".." && name != "." && !name.is_empty());
        }
    }
});
