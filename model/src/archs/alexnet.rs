//! `alexnet`: the dense, single-tower AlexNet that Zeiler & Fergus replicated.
//!
//! 96-256-384-384-256 filters, 11x11 stride 4 first layer (padding 2, as
//! torchvision, so that 224 gives 55), conv -> ReLU -> LRN -> overlapping
//! max-pool 3/2 in layers 1 and 2, dropout 0.5 after fc6 and fc7.

use crate::arch::{Arch, ArchConfig, TableBuilder};

/// The ZF replication of AlexNet.
pub(crate) fn alexnet(config: &ArchConfig) -> Arch {
    let mut t = TableBuilder::new();
    t.section("features")
        .conv(1, 96, 11, 4, 2)
        .relu(1)
        .lrn(1, config.lrn)
        .pool(1, 3, 2, 0)
        .conv(2, 256, 5, 1, 2)
        .relu(2)
        .lrn(2, config.lrn)
        .pool(2, 3, 2, 0)
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
        .build("alexnet")
}
