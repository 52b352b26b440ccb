//! Data for zftrain, independent of the tensor library: the ImageFolder and
//! list-file indexes, the augmentations (`zf`, `rrc`, `eval`), the loader
//! that decodes and augments in worker threads and yields batches in an order
//! fixed by `(seed, epoch)`, and the synthetic data set of real JPEG files
//! that the demo and the tests train on.
//!
//! Batches are plain `f32` buffers (`[N, 3, H, W]`, normalized) plus labels;
//! the trainer turns them into tensors.

pub mod dataset;
pub mod decode;
pub mod error;
pub mod leaves;
pub mod loader;
pub mod mean_image;
pub mod pack;
pub mod rng;
pub mod scene;
pub mod shaped;
pub mod synth;
pub mod transform;

pub use dataset::{Dataset, Sample};
pub use error::DataError;
pub use loader::{BadImages, Batch, Loader, LoaderConfig};
pub use mean_image::{MeanEstimate, MeanImage};
pub use transform::{Augment, Transform};
