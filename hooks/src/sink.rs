//! Where hooks put what they see: scalars, images, histograms, text. The
//! trainer implements it on its TensorBoard writer; tests collect in memory.

use image::RgbImage;

use crate::HookError;

/// A summary sink. Every method may fail (a full disk, a closed writer);
/// the hook reports it like any other failure.
pub trait SummarySink {
    /// A scalar at `step`.
    fn scalar(&self, tag: &str, step: i64, value: f64) -> Result<(), HookError>;
    /// An RGB image at `step`.
    fn image(&self, tag: &str, step: i64, image: &RgbImage) -> Result<(), HookError>;
    /// A histogram of `values` at `step`.
    fn histogram(&self, tag: &str, step: i64, values: &[f64]) -> Result<(), HookError>;
    /// A text (markdown) at `step`.
    fn text(&self, tag: &str, step: i64, text: &str) -> Result<(), HookError>;
}

/// What a [`MemorySink`] received.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// `(tag, step, value)`.
    Scalar(String, i64, f64),
    /// `(tag, step, width, height)`.
    Image(String, i64, u32, u32),
    /// `(tag, step, values)`.
    Histogram(String, i64, Vec<f64>),
    /// `(tag, step, text)`.
    Text(String, i64, String),
}

/// A sink that keeps everything in memory (tests, and `zftrain visualize`
/// listings).
#[derive(Debug, Default)]
pub struct MemorySink {
    /// Everything received, in order.
    pub items: std::sync::Mutex<Vec<Recorded>>,
}

impl MemorySink {
    /// The tags received, in order.
    pub fn tags(&self) -> Vec<String> {
        self.items
            .lock()
            .map(|v| {
                v.iter()
                    .map(|s| match s {
                        Recorded::Scalar(t, ..)
                        | Recorded::Image(t, ..)
                        | Recorded::Histogram(t, ..)
                        | Recorded::Text(t, ..) => t.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn push(&self, s: Recorded) -> Result<(), HookError> {
        self.items
            .lock()
            .map_err(|_| HookError::Sink {
                tag: "memory".into(),
                message: "poisoned".into(),
            })?
            .push(s);
        Ok(())
    }
}

impl SummarySink for MemorySink {
    fn scalar(&self, tag: &str, step: i64, value: f64) -> Result<(), HookError> {
        self.push(Recorded::Scalar(tag.into(), step, value))
    }
    fn image(&self, tag: &str, step: i64, image: &RgbImage) -> Result<(), HookError> {
        self.push(Recorded::Image(
            tag.into(),
            step,
            image.width(),
            image.height(),
        ))
    }
    fn histogram(&self, tag: &str, step: i64, values: &[f64]) -> Result<(), HookError> {
        self.push(Recorded::Histogram(tag.into(), step, values.to_vec()))
    }
    fn text(&self, tag: &str, step: i64, text: &str) -> Result<(), HookError> {
        self.push(Recorded::Text(tag.into(), step, text.into()))
    }
}
