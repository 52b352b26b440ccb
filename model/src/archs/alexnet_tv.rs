//! `alexnet-tv`: torchvision's `alexnet()` layout and parameter names.
//!
//! 64-192-384-256-256 filters, no LRN, adaptive average pool to 6x6, dropout
//! before fc6 and fc7: `features.{0,3,6,8,10}`, `classifier.{1,4,6}`, so
//! torchvision's weights load here and ours load there.

use crate::arch::{Arch, ArchConfig, TableBuilder};

/// torchvision's AlexNet table.
pub(crate) fn alexnet_tv(config: &ArchConfig) -> Arch {
    let mut t = TableBuilder::new();
    t.section("features")
        .conv(1, 64, 11, 4, 2)
        .relu(1)
        .pool(1, 3, 2, 0)
        .conv(2, 192, 5, 1, 2)
        .relu(2)
        .pool(2, 3, 2, 0)
        .conv(3, 384, 3, 1, 1)
        .relu(3)
        .conv(4, 256, 3, 1, 1)
        .relu(4)
        .conv(5, 256, 3, 1, 1)
        .relu(5)
        .pool(5, 3, 2, 0)
        .avgpool(6, 6)
        .flatten(256 * 6 * 6)
        .section("classifier")
        .dropout(6, config.dropout)
        .linear(6, 4096)
        .relu(6)
        .dropout(7, config.dropout)
        .linear(7, 4096)
        .relu(7)
        .linear(8, config.classes)
        .build("alexnet-tv")
}
