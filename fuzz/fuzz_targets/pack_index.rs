//! A pack file's bytes: never a panic; every accepted entry lies inside the
//! file's data.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((entries, classes)) = zftrain_data::pack::parse_layout(data) {
        for e in &entries {
            assert!(e.offset.checked_add(e.len).is_some_and(|end| end as usize <= data.len()));
            assert!(e.label < classes.len());
        }
    }
});
