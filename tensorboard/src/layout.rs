//! The custom-scalars dashboard's layout: which curves share a chart, in
//! which order the sections come. TensorBoard's own scalar dashboard sorts
//! tag groups alphabetically; this one shows the run as its author laid it
//! out (training curves first). Field numbers from the custom-scalar
//! plugin's `layout.proto`; written once per event file under the tag
//! `custom_scalars__config__`.

/// `tensorboard.Layout`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Layout {
    /// Always 0.
    #[prost(int32, tag = "1")]
    pub version: i32,
    /// The sections, in order.
    #[prost(message, repeated, tag = "2")]
    pub category: Vec<Category>,
}

/// `tensorboard.Category`: a titled section of charts.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Category {
    /// The section's title.
    #[prost(string, tag = "1")]
    pub title: String,
    /// Its charts, in order.
    #[prost(message, repeated, tag = "2")]
    pub chart: Vec<Chart>,
    /// Folded when the dashboard opens.
    #[prost(bool, tag = "3")]
    pub closed: bool,
}

/// `tensorboard.Chart`: one chart of several curves.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Chart {
    /// The chart's title.
    #[prost(string, tag = "1")]
    pub title: String,
    /// The curves.
    #[prost(message, optional, tag = "2")]
    pub multiline: Option<MultilineChartContent>,
}

/// `tensorboard.MultilineChartContent`: the tags drawn in one chart, as
/// regular expressions (`filters/conv\d+/dead_fraction` draws every layer's).
#[derive(Clone, PartialEq, prost::Message)]
pub struct MultilineChartContent {
    /// Tag patterns.
    #[prost(string, repeated, tag = "1")]
    pub tag: Vec<String>,
}

impl Chart {
    /// A chart titled `title` of the tags matching `patterns`.
    pub fn lines(title: &str, patterns: &[&str]) -> Chart {
        Chart {
            title: title.into(),
            multiline: Some(MultilineChartContent {
                tag: patterns.iter().map(|p| p.to_string()).collect(),
            }),
        }
    }
}

impl Category {
    /// An open section titled `title`.
    pub fn new(title: &str, chart: Vec<Chart>) -> Category {
        Category {
            title: title.into(),
            chart,
            closed: false,
        }
    }
}

/// The tag the custom-scalar plugin reads its layout from.
pub const LAYOUT_TAG: &str = "custom_scalars__config__";
