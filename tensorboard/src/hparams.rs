//! Hyper-parameters for TensorBoard's HParams dashboard: an `experiment`
//! summary (which hyper-parameters and which metric tags) and a
//! `session_start_info` summary (this run's values), as the hparams plugin's
//! `plugin_data.proto` and `api.proto` define them (field numbers from there).

use std::collections::BTreeMap;

/// A hyper-parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum HParamValue {
    /// A number.
    Number(f64),
    /// A string.
    Text(String),
    /// A boolean.
    Bool(bool),
}

/// `tensorboard.hparams.HParamsPluginData`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HParamsPluginData {
    /// Always 0.
    #[prost(int32, tag = "1")]
    pub version: i32,
    /// What it carries.
    #[prost(oneof = "PluginDataKind", tags = "2, 3")]
    pub data: Option<PluginDataKind>,
}

/// The `data` oneof.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum PluginDataKind {
    /// The experiment description.
    #[prost(message, tag = "2")]
    Experiment(Experiment),
    /// One session's values.
    #[prost(message, tag = "3")]
    SessionStartInfo(SessionStartInfo),
    /// How the session ended.
    #[prost(message, tag = "4")]
    SessionEndInfo(SessionEndInfo),
}

/// How a run ended, for the HParams dashboard (`tensorboard.hparams.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// It trained all its epochs.
    Success = 1,
    /// It stopped on an error (a diverging loss, a failed required hook).
    Failure = 2,
}

/// `tensorboard.hparams.SessionEndInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionEndInfo {
    /// `Status`: 1 success, 2 failure.
    #[prost(int32, tag = "1")]
    pub status: i32,
    /// End time, seconds since the epoch.
    #[prost(double, tag = "2")]
    pub end_time_secs: f64,
}

/// `tensorboard.hparams.Experiment`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Experiment {
    /// The hyper-parameters.
    #[prost(message, repeated, tag = "4")]
    pub hparam_infos: Vec<HParamInfo>,
    /// The metrics.
    #[prost(message, repeated, tag = "5")]
    pub metric_infos: Vec<MetricInfo>,
}

/// `tensorboard.hparams.HParamInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HParamInfo {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `tensorboard.hparams.MetricInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricInfo {
    /// Which scalar tag.
    #[prost(message, optional, tag = "1")]
    pub name: Option<MetricName>,
    /// What it measures.
    #[prost(string, tag = "4")]
    pub description: String,
}

/// `tensorboard.hparams.MetricName`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricName {
    /// Sub-directory of the run ("" = the run itself).
    #[prost(string, tag = "1")]
    pub group: String,
    /// The scalar tag.
    #[prost(string, tag = "2")]
    pub tag: String,
}

/// `tensorboard.hparams.SessionStartInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionStartInfo {
    /// Values by name.
    #[prost(btree_map = "string, message", tag = "1")]
    pub hparams: BTreeMap<String, ProtoValue>,
    /// Start time, seconds since the epoch.
    #[prost(double, tag = "5")]
    pub start_time_secs: f64,
}

/// `google.protobuf.Value` (the kinds we use).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoValue {
    /// The value.
    #[prost(oneof = "ProtoValueKind", tags = "2, 3, 4")]
    pub kind: Option<ProtoValueKind>,
}

/// The `kind` oneof of `google.protobuf.Value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ProtoValueKind {
    /// `number_value`.
    #[prost(double, tag = "2")]
    Number(f64),
    /// `string_value`.
    #[prost(string, tag = "3")]
    Text(String),
    /// `bool_value`.
    #[prost(bool, tag = "4")]
    Bool(bool),
}

impl From<&HParamValue> for ProtoValue {
    fn from(v: &HParamValue) -> Self {
        let kind = match v {
            HParamValue::Number(x) => ProtoValueKind::Number(*x),
            HParamValue::Text(s) => ProtoValueKind::Text(s.clone()),
            HParamValue::Bool(b) => ProtoValueKind::Bool(*b),
        };
        ProtoValue { kind: Some(kind) }
    }
}

/// The two plugin payloads: `(experiment, session_start_info)`; `describe`
/// gives the metrics' descriptions.
pub fn plugin_payloads(
    hparams: &[(String, HParamValue)],
    metrics: &[&str],
    start: f64,
    describe: Option<crate::writer::Describe>,
) -> (HParamsPluginData, HParamsPluginData) {
    let experiment = Experiment {
        hparam_infos: hparams
            .iter()
            .map(|(n, _)| HParamInfo { name: n.clone() })
            .collect(),
        metric_infos: metrics
            .iter()
            .map(|t| MetricInfo {
                name: Some(MetricName {
                    group: String::new(),
                    tag: t.to_string(),
                }),
                description: describe.and_then(|d| d(t)).unwrap_or_default().into(),
            })
            .collect(),
    };
    let session = SessionStartInfo {
        hparams: hparams.iter().map(|(n, v)| (n.clone(), v.into())).collect(),
        start_time_secs: start,
    };
    (
        HParamsPluginData {
            version: 0,
            data: Some(PluginDataKind::Experiment(experiment)),
        },
        HParamsPluginData {
            version: 0,
            data: Some(PluginDataKind::SessionStartInfo(session)),
        },
    )
}

/// The payload that ends a session with `status` at `end` (seconds since
/// the epoch).
pub fn session_end(status: SessionStatus, end: f64) -> HParamsPluginData {
    HParamsPluginData {
        version: 0,
        data: Some(PluginDataKind::SessionEndInfo(SessionEndInfo {
            status: status as i32,
            end_time_secs: end,
        })),
    }
}
