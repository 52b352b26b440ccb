//! TensorBoard's record framing: any payload written reads back the same,
//! and arbitrary bytes read as records never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zftrain_tensorboard::record::{read_record, write_record};

fuzz_target!(|data: &[u8]| {
    let mut framed = Vec::new();
    write_record(&mut framed, data).expect("writing to memory");
    write_record(&mut framed, &data[..data.len() / 2]).expect("writing to memory");
    let mut input = framed.as_slice();
    assert_eq!(read_record(&mut input).unwrap().as_deref(), Some(data));
    assert_eq!(read_record(&mut input).unwrap().as_deref(), Some(&data[..data.len() / 2]));
    assert_eq!(read_record(&mut input).unwrap(), None);
    let mut raw = data;
    while let Ok(Some(_)) = read_record(&mut raw) {}
});
