//! `zfnet-seed`: exactly the seed article's PyTorch `ZFNet` class.
//!
//! `features`: conv 96 7/2/1, ReLU, pool 3/2/1, conv 256 5/2/0, ReLU,
//! pool 3/2/1, conv 384, ReLU, conv 384, ReLU, conv 256 (3/1/1), ReLU,
//! pool 3/2/0; `torch.flatten`; `classifier`: Linear 9216->4096, ReLU,
//! Dropout, Linear 4096->4096, ReLU, Linear 4096->classes. No LRN, and only
//! one dropout, as in the seed's code.

use crate::arch::{Arch, ArchConfig, TableBuilder};

/// The seed's ZFNet table.
pub(crate) fn zfnet_seed(config: &ArchConfig) -> Arch {
    let mut t = TableBuilder::new();
    t.section("features")
        .conv(1, 96, 7, 2, 1)
        .relu(1)
        .pool(1, 3, 2, 1)
        .conv(2, 256, 5, 2, 0)
        .relu(2)
        .pool(2, 3, 2, 1)
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
        .linear(8, config.classes)
        .build("zfnet-seed")
}
