//! `zfnet`: Zeiler & Fergus's ZFNet (their Fig. 3).
//!
//! Conv -> ReLU -> max-pool -> contrast normalization in layers 1 and 2, as the
//! paper orders them. The paper gives no parameters for its contrast
//! normalization; we use Krizhevsky's LRN (k = 2, n = 5, alpha = 1e-4,
//! beta = 0.75), switchable off. Paddings follow the seed (conv1 pad 1, pools
//! 1 and 2 pad 1, conv2 pad 0, pool 5 pad 0), which gives the paper's
//! 110 -> 55 -> 26 -> 13 -> 6. Dropout 0.5 after fc6 and fc7.

use crate::arch::{Arch, ArchConfig, TableBuilder};

/// The paper's ZFNet table.
pub(crate) fn zfnet(config: &ArchConfig) -> Arch {
    let mut t = TableBuilder::new();
    t.section("features")
        .conv(1, 96, 7, 2, 1)
        .relu(1)
        .pool(1, 3, 2, 1)
        .lrn(1, config.lrn)
        .conv(2, 256, 5, 2, 0)
        .relu(2)
        .pool(2, 3, 2, 1)
        .lrn(2, config.lrn)
        .conv(3, 384, 3, 1, 1)
        .relu(3)
        .conv(4, 384, 3, 1, 1)
        .relu(4)
        .conv(5, 256, 3, 1, 1)
        .relu(5)
        .pool(5, 3, 2, 0)
        .flatten(256 * 6 * 6)
        .section("classifier")
        .linear(6, 4096)
        .relu(6)
        .dropout(6, config.dropout)
        .linear(7, 4096)
        .relu(7)
        .dropout(7, config.dropout)
        .linear(8, config.classes)
        .build("zfnet")
}
