//! The protocol buffer messages of a TensorBoard event file that we write,
//! declared by hand with `prost` (field numbers as in TensorBoard's
//! `tensorboard/compat/proto/{event,summary,tensor,tensor_shape}.proto`).

/// `tensorboard.Event`: one record of the file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// Global step.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// What the event carries.
    #[prost(oneof = "EventWhat", tags = "3, 5, 7")]
    pub what: Option<EventWhat>,
}

/// The `what` oneof of `Event` (the two cases we write).
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum EventWhat {
    /// `file_version`, first event of every file: `brain.Event:2`.
    #[prost(string, tag = "3")]
    FileVersion(String),
    /// A summary.
    #[prost(message, tag = "5")]
    Summary(Summary),
    /// A session marker; `START` at step `s` tells readers to drop events
    /// of earlier sessions with step >= `s` (a resumed run).
    #[prost(message, tag = "7")]
    SessionLog(SessionLog),
}

/// `tensorboard.SessionLog`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionLog {
    /// 1 = `START`, 2 = `STOP`, 3 = `CHECKPOINT`.
    #[prost(int32, tag = "1")]
    pub status: i32,
    /// Checkpoint path (for `CHECKPOINT`).
    #[prost(string, tag = "2")]
    pub checkpoint_path: String,
    /// Free text.
    #[prost(string, tag = "3")]
    pub msg: String,
}

/// `SessionLog.START`.
pub const SESSION_START: i32 = 1;

/// `tensorboard.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorboard.Summary.Value`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    /// Tag, `train/loss` and the like.
    #[prost(string, tag = "1")]
    pub tag: String,
    /// Which plugin reads the value.
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<SummaryMetadata>,
    /// The value.
    #[prost(oneof = "ValueKind", tags = "2, 4, 5, 8")]
    pub value: Option<ValueKind>,
}

/// The `value` oneof of `Summary.Value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ValueKind {
    /// A scalar.
    #[prost(float, tag = "2")]
    SimpleValue(f32),
    /// An encoded image.
    #[prost(message, tag = "4")]
    Image(Image),
    /// A histogram.
    #[prost(message, tag = "5")]
    Histo(HistogramProto),
    /// A tensor (text summaries are string tensors).
    #[prost(message, tag = "8")]
    Tensor(TensorProto),
}

/// `tensorboard.Summary.Image`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Image {
    /// Height in pixels.
    #[prost(int32, tag = "1")]
    pub height: i32,
    /// Width in pixels.
    #[prost(int32, tag = "2")]
    pub width: i32,
    /// 1 grey, 3 RGB, 4 RGBA.
    #[prost(int32, tag = "3")]
    pub colorspace: i32,
    /// PNG bytes.
    #[prost(bytes = "vec", tag = "4")]
    pub encoded_image_string: Vec<u8>,
}

/// `tensorboard.HistogramProto`: bucket `i` counts values in
/// `(bucket_limit[i-1], bucket_limit[i]]`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HistogramProto {
    /// Smallest value.
    #[prost(double, tag = "1")]
    pub min: f64,
    /// Largest value.
    #[prost(double, tag = "2")]
    pub max: f64,
    /// Number of values.
    #[prost(double, tag = "3")]
    pub num: f64,
    /// Sum of the values.
    #[prost(double, tag = "4")]
    pub sum: f64,
    /// Sum of their squares.
    #[prost(double, tag = "5")]
    pub sum_squares: f64,
    /// Right edges of the buckets.
    #[prost(double, repeated, tag = "6")]
    pub bucket_limit: Vec<f64>,
    /// Counts per bucket.
    #[prost(double, repeated, tag = "7")]
    pub bucket: Vec<f64>,
}

/// `tensorboard.SummaryMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryMetadata {
    /// The plugin that owns the value.
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<PluginData>,
    /// What the tag shows, one line (TensorBoard shows it on the card).
    #[prost(string, tag = "3")]
    pub summary_description: String,
}

/// `tensorboard.SummaryMetadata.PluginData`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PluginData {
    /// `text`, `scalars`, ...
    #[prost(string, tag = "1")]
    pub plugin_name: String,
    /// Plugin-specific content.
    #[prost(bytes = "vec", tag = "2")]
    pub content: Vec<u8>,
}

/// `tensorboard.TensorProto` (only what a string tensor needs).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// `DataType`: 7 = `DT_STRING`.
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    /// Shape.
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShapeProto>,
    /// String values.
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub string_val: Vec<Vec<u8>>,
}

/// `tensorboard.TensorShapeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// Dimensions.
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<Dim>,
}

/// `tensorboard.TensorShapeProto.Dim`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dim {
    /// Size of the dimension.
    #[prost(int64, tag = "1")]
    pub size: i64,
}

/// `DT_FLOAT` in TensorBoard's `DataType` enum.
pub const DT_FLOAT: i32 = 1;

/// `DT_STRING` in TensorBoard's `DataType` enum.
pub const DT_STRING: i32 = 7;
