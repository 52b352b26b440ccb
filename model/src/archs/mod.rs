//! The four built-in layer tables, one file each.

mod alexnet;
mod alexnet_tv;
mod zfnet;
mod zfnet_seed;

pub(crate) use alexnet::alexnet;
pub(crate) use alexnet_tv::alexnet_tv;
pub(crate) use zfnet::zfnet;
pub(crate) use zfnet_seed::zfnet_seed;
