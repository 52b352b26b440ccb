//! [`SummaryWriter`]: one event file in a log directory, with scalars,
//! images, histograms and text. Every method returns I/O errors (a full disk
//! is an error, not a panic); [`SummaryWriter::flush`] pushes buffered events
//! to the file so TensorBoard sees them.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;
use thiserror::Error;

use crate::proto::{
    Dim, Event, EventWhat, HistogramProto, Image, PluginData, SessionLog, Summary, SummaryMetadata,
    SummaryValue, TensorProto, TensorShapeProto, ValueKind, DT_FLOAT, DT_STRING, SESSION_START,
};
use crate::record::write_record;

/// Errors of the writer; each names the event file or the bad argument.
#[derive(Debug, Error)]
pub enum TensorBoardError {
    /// Creating or writing the event file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An image whose buffer does not match its declared size.
    #[error("image '{tag}': {message}")]
    Image {
        /// The summary tag.
        tag: String,
        /// What is wrong.
        message: String,
    },
}

/// A histogram in TensorBoard's form.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram(pub HistogramProto);

impl Histogram {
    /// Buckets `values` into `buckets` equal-width buckets between their
    /// minimum and maximum. Non-finite values are skipped.
    pub fn from_values(values: &[f64], buckets: usize) -> Histogram {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let buckets = buckets.max(1);
        let mut h = HistogramProto {
            num: finite.len() as f64,
            sum: finite.iter().sum(),
            sum_squares: finite.iter().map(|v| v * v).sum(),
            ..Default::default()
        };
        if finite.is_empty() {
            return Histogram(h);
        }
        h.min = finite.iter().copied().fold(f64::INFINITY, f64::min);
        h.max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let width = (h.max - h.min) / buckets as f64;
        if width == 0.0 {
            h.bucket_limit = vec![h.max];
            h.bucket = vec![finite.len() as f64];
            return Histogram(h);
        }
        h.bucket_limit = (1..=buckets).map(|i| h.min + width * i as f64).collect();
        *h.bucket_limit.last_mut().expect("at least one bucket") = h.max;
        h.bucket = vec![0.0; buckets];
        for v in finite {
            let i = (((v - h.min) / width) as usize).min(buckets - 1);
            h.bucket[i] += 1.0;
        }
        Histogram(h)
    }
}

/// The one-line description of a tag, if it has one.
pub type Describe = fn(&str) -> Option<&'static str>;

/// Writes one TensorBoard event file.
#[derive(Debug)]
pub struct SummaryWriter {
    path: PathBuf,
    out: BufWriter<File>,
    last_flush: std::time::Instant,
    flush_every: std::time::Duration,
    describe: Option<Describe>,
    described: HashSet<String>,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty() && !s.contains(['/', '\0']))
        .unwrap_or_else(|| "localhost".into())
}

impl SummaryWriter {
    /// Creates `logdir` if needed and a new event file in it
    /// (`events.out.tfevents.<seconds>.<host>.<pid>.<n>`, never an existing one).
    pub fn create(logdir: &Path) -> Result<SummaryWriter, TensorBoardError> {
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| TensorBoardError::Io {
                action,
                path,
                source,
            }
        };
        fs::create_dir_all(logdir).map_err(io("creating directory", logdir))?;
        let stem = format!(
            "events.out.tfevents.{}.{}.{}",
            now() as u64,
            hostname(),
            std::process::id()
        );
        let mut n = 0;
        let (path, file) = loop {
            let path = logdir.join(format!("{stem}.{n}"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => break (path, f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
                Err(e) => return Err(io("creating", &path)(e)),
            }
        };
        let mut w = SummaryWriter {
            path,
            out: BufWriter::new(file),
            last_flush: std::time::Instant::now(),
            flush_every: std::time::Duration::from_secs(10),
            describe: None,
            described: HashSet::new(),
        };
        w.write_event(Event {
            wall_time: now(),
            step: 0,
            what: Some(EventWhat::FileVersion("brain.Event:2".into())),
        })?;
        w.flush()?;
        Ok(w)
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_event(&mut self, event: Event) -> Result<(), TensorBoardError> {
        write_record(&mut self.out, &event.encode_to_vec()).map_err(|source| TensorBoardError::Io {
            action: "writing",
            path: self.path.clone(),
            source,
        })
    }

    fn write_value(&mut self, step: i64, mut value: SummaryValue) -> Result<(), TensorBoardError> {
        // TensorBoard keeps the first metadata of a tag in a file: the
        // description goes with the first value only.
        if let Some(describe) = self.describe {
            if !self.described.contains(&value.tag) {
                self.described.insert(value.tag.clone());
                if let Some(d) = describe(&value.tag) {
                    value
                        .metadata
                        .get_or_insert_with(Default::default)
                        .summary_description = d.to_string();
                }
            }
        }
        let summary = Summary { value: vec![value] };
        self.write_event(Event {
            wall_time: now(),
            step,
            what: Some(EventWhat::Summary(summary)),
        })?;
        if self.last_flush.elapsed() >= self.flush_every {
            self.flush()?;
        }
        Ok(())
    }

    /// Gives every tag written from now on the description `describe`
    /// returns for it (shown by TensorBoard on the tag's card).
    pub fn set_descriptions(&mut self, describe: Describe) {
        self.describe = Some(describe);
    }

    /// A scalar (stored as `f32`, as TensorBoard does).
    pub fn scalar(&mut self, tag: &str, step: i64, value: f64) -> Result<(), TensorBoardError> {
        let value = SummaryValue {
            tag: tag.into(),
            metadata: None,
            value: Some(ValueKind::SimpleValue(value as f32)),
        };
        self.write_value(step, value)
    }

    /// An RGB image: `rgb` is `height * width * 3` bytes, row-major, HWC.
    pub fn image_rgb(
        &mut self,
        tag: &str,
        step: i64,
        width: u32,
        height: u32,
        rgb: &[u8],
    ) -> Result<(), TensorBoardError> {
        let bad = |message: String| TensorBoardError::Image {
            tag: tag.into(),
            message,
        };
        let want = width as usize * height as usize * 3;
        if width == 0 || height == 0 || rgb.len() != want {
            return Err(bad(format!(
                "{width}x{height} RGB needs {want} bytes, got {}",
                rgb.len()
            )));
        }
        let mut png_bytes = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut png_bytes, width, height);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().map_err(|e| bad(e.to_string()))?;
            w.write_image_data(rgb).map_err(|e| bad(e.to_string()))?;
        }
        let image = Image {
            height: height as i32,
            width: width as i32,
            colorspace: 3,
            encoded_image_string: png_bytes,
        };
        self.write_value(
            step,
            SummaryValue {
                tag: tag.into(),
                metadata: None,
                value: Some(ValueKind::Image(image)),
            },
        )
    }

    /// A histogram of `values` (30 equal-width buckets).
    pub fn histogram(
        &mut self,
        tag: &str,
        step: i64,
        values: &[f64],
    ) -> Result<(), TensorBoardError> {
        let Histogram(h) = Histogram::from_values(values, 30);
        self.write_value(
            step,
            SummaryValue {
                tag: tag.into(),
                metadata: None,
                value: Some(ValueKind::Histo(h)),
            },
        )
    }

    /// Text (Markdown), shown by TensorBoard's text plugin.
    pub fn text(&mut self, tag: &str, step: i64, text: &str) -> Result<(), TensorBoardError> {
        let tensor = TensorProto {
            dtype: DT_STRING,
            tensor_shape: Some(TensorShapeProto {
                dim: vec![Dim { size: 1 }],
            }),
            string_val: vec![text.as_bytes().to_vec()],
        };
        self.plugin_tensor(tag, step, "text", Vec::new(), tensor)
    }

    /// A value owned by `plugin` (its `content`), carrying `tensor`.
    fn plugin_tensor(
        &mut self,
        tag: &str,
        step: i64,
        plugin: &str,
        content: Vec<u8>,
        tensor: TensorProto,
    ) -> Result<(), TensorBoardError> {
        let metadata = SummaryMetadata {
            plugin_data: Some(PluginData {
                plugin_name: plugin.into(),
                content,
            }),
            summary_description: String::new(),
        };
        self.write_value(
            step,
            SummaryValue {
                tag: tag.into(),
                metadata: Some(metadata),
                value: Some(ValueKind::Tensor(tensor)),
            },
        )
    }

    /// The custom-scalars dashboard's layout (once per file is enough).
    pub fn custom_scalars(&mut self, layout: &crate::Layout) -> Result<(), TensorBoardError> {
        let tensor = TensorProto {
            dtype: DT_STRING,
            tensor_shape: Some(TensorShapeProto { dim: Vec::new() }),
            string_val: vec![layout.encode_to_vec()],
        };
        self.plugin_tensor(
            crate::layout::LAYOUT_TAG,
            0,
            "custom_scalars",
            Vec::new(),
            tensor,
        )
    }

    /// The run's hyper-parameters and the scalar tags to compare runs by,
    /// for TensorBoard's HParams dashboard.
    pub fn hparams(
        &mut self,
        hparams: &[(String, crate::HParamValue)],
        metrics: &[&str],
    ) -> Result<(), TensorBoardError> {
        let (experiment, session) =
            crate::hparams::plugin_payloads(hparams, metrics, now(), self.describe);
        self.hparams_payload("_hparams_/experiment", &experiment)?;
        self.hparams_payload("_hparams_/session_start_info", &session)
    }

    /// Ends the HParams session with `status` (without it the dashboard
    /// shows the run's status as unknown).
    pub fn session_end(&mut self, status: crate::SessionStatus) -> Result<(), TensorBoardError> {
        let end = crate::hparams::session_end(status, now());
        self.hparams_payload("_hparams_/session_end_info", &end)
    }

    fn hparams_payload(
        &mut self,
        tag: &str,
        payload: &crate::hparams::HParamsPluginData,
    ) -> Result<(), TensorBoardError> {
        // The plugin's NULL_TENSOR: an empty float tensor.
        let tensor = TensorProto {
            dtype: DT_FLOAT,
            tensor_shape: Some(TensorShapeProto {
                dim: vec![Dim { size: 0 }],
            }),
            string_val: Vec::new(),
        };
        self.plugin_tensor(tag, 0, "hparams", payload.encode_to_vec(), tensor)
    }

    /// Marks a restart at `step` (a resumed run): TensorBoard's reader then
    /// drops what earlier files logged at steps `>= step`, so a resumed curve
    /// does not overlap the one the interrupted run left behind.
    pub fn restart_at(&mut self, step: i64) -> Result<(), TensorBoardError> {
        let log = SessionLog {
            status: SESSION_START,
            checkpoint_path: String::new(),
            msg: "resumed".into(),
        };
        self.write_event(Event {
            wall_time: now(),
            step,
            what: Some(EventWhat::SessionLog(log)),
        })
    }

    /// Pushes buffered events to the file.
    pub fn flush(&mut self) -> Result<(), TensorBoardError> {
        self.last_flush = std::time::Instant::now();
        self.out.flush().map_err(|source| TensorBoardError::Io {
            action: "flushing",
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_count_every_finite_value() {
        let values: Vec<f64> = (0..100)
            .map(|i| i as f64)
            .chain([f64::NAN, f64::INFINITY])
            .collect();
        let Histogram(h) = Histogram::from_values(&values, 10);
        assert_eq!(h.num, 100.0);
        assert_eq!(h.bucket.iter().sum::<f64>(), 100.0);
        assert_eq!(h.bucket, vec![10.0; 10]);
        assert_eq!((h.min, h.max), (0.0, 99.0));
        assert_eq!(*h.bucket_limit.last().unwrap(), 99.0);
        let Histogram(flat) = Histogram::from_values(&[2.0, 2.0], 10);
        assert_eq!(flat.bucket, vec![2.0]);
    }

    #[test]
    fn a_wrong_sized_image_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SummaryWriter::create(dir.path()).unwrap();
        let err = w.image_rgb("x", 0, 4, 4, &[0; 10]).unwrap_err().to_string();
        assert!(err.contains("'x'") && err.contains("48"), "{err}");
    }

    #[test]
    fn two_writers_never_share_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = SummaryWriter::create(dir.path()).unwrap();
        let b = SummaryWriter::create(dir.path()).unwrap();
        assert_ne!(a.path(), b.path());
    }
}
