//! A torchsummary-style table of an architecture: every layer with its output
//! shape, parameter count and (for conv layers) receptive field, then totals,
//! mult-adds and memory sizes.
//!
//! Memory sizes follow torch-summary 1.4.5's definitions so that the seed's
//! table is reproduced exactly: float32 everywhere; "forward/backward pass" is
//! twice the outputs of the layers that have parameters. Mult-adds are the
//! true count for conv and linear layers; torch-summary 1.4.5 also adds the
//! parameters of every `nn.Sequential` container once more, and the footer
//! prints that figure too so the two can be compared.

use std::fmt;

use serde::Serialize;

use crate::receptive::{receptive_fields, ReceptiveField};
use crate::shape::infer_shapes;
use crate::{Arch, ModelError};

const MB: f64 = 1024.0 * 1024.0;

/// One row of the summary.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryRow {
    /// PyTorch module class, or for a step that is no module the function
    /// (`torch.flatten`, `F.relu`, `F.max_pool2d`, ...).
    pub layer_type: String,
    /// Nesting depth: 1 for top-level modules, 2 inside a `Sequential`.
    pub depth: usize,
    /// Running index at that depth (torch-summary's `depth-idx`).
    pub index: usize,
    /// Short label (`conv1`, `pool1`, ...).
    pub label: String,
    /// PyTorch module path, if the layer is a module.
    pub module: Option<String>,
    /// Output shape with `-1` for the batch.
    pub output: Vec<i64>,
    /// Learnable scalars.
    pub params: i64,
    /// Receptive field `(size, cumulative stride)` for conv layers.
    pub receptive_field: Option<(i64, i64)>,
}

/// A section header row: an `nn.Sequential` container.
#[derive(Debug, Clone, Serialize)]
pub struct SummarySection {
    /// Container name (`features`, `classifier`).
    pub name: String,
    /// Index at depth 1.
    pub index: usize,
    /// Output shape of its last layer, `-1` for the batch.
    pub output: Vec<i64>,
    /// Position of its first row in `rows`.
    pub first_row: usize,
}

/// The summary of an architecture.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Architecture name.
    pub arch: String,
    /// Input `[C, H, W]`.
    pub input: [i64; 3],
    /// One row per layer.
    pub rows: Vec<SummaryRow>,
    /// The `nn.Sequential` containers.
    pub sections: Vec<SummarySection>,
    /// Total learnable scalars.
    pub total_params: i64,
    /// Multiply-adds of conv and linear layers for one image.
    pub mult_adds: i64,
    /// What torch-summary 1.4.5 reports as mult-adds (parameters of the
    /// `Sequential` containers added once more).
    pub torchsummary_mult_adds: i64,
    /// Input size in MiB (float32).
    pub input_mb: f64,
    /// torch-summary's forward/backward pass size in MiB.
    pub forward_backward_mb: f64,
    /// Parameter size in MiB (float32).
    pub params_mb: f64,
}

impl Summary {
    /// Computes the summary of `arch` for one image of its declared input size.
    pub fn new(arch: &Arch) -> Result<Summary, ModelError> {
        let shapes = infer_shapes(arch)?;
        let fields = receptive_fields(arch);
        let mut rows = Vec::new();
        let mut sections: Vec<SummarySection> = Vec::new();
        let (mut top_index, mut inner_index) = (0, 0);
        let mut outputs_with_params = 0i64;
        let mut container_params = 0i64;
        for (i, layer) in arch.layers.iter().enumerate() {
            let shape = &shapes[i];
            let section = layer
                .module
                .as_deref()
                .and_then(|m| m.rsplit_once('.'))
                .map(|(s, _)| s);
            let (depth, index) = match section {
                Some(name) => {
                    if sections.last().map(|s| s.name.as_str()) != Some(name) {
                        top_index += 1;
                        sections.push(SummarySection {
                            name: name.to_string(),
                            index: top_index,
                            output: Vec::new(),
                            first_row: rows.len(),
                        });
                    }
                    let sec = sections.last_mut().expect("pushed above");
                    sec.output = batch_shape(&shape.output);
                    container_params += shape.params;
                    inner_index += 1;
                    (2, inner_index)
                }
                None if layer.module.is_some() => {
                    top_index += 1;
                    (1, top_index)
                }
                None => (1, 0),
            };
            if shape.params > 0 {
                outputs_with_params += shape.output.iter().product::<i64>();
            }
            let receptive_field = match (&layer.kind, fields[i]) {
                (crate::LayerKind::Conv(_), Some(ReceptiveField { size, stride, .. })) => {
                    Some((size, stride))
                }
                _ => None,
            };
            rows.push(SummaryRow {
                layer_type: match (&layer.module, &layer.kind) {
                    (None, crate::LayerKind::Flatten) => "torch.flatten".to_string(),
                    (None, kind) => format!("F.{}", functional_name(kind)),
                    (Some(_), kind) => kind.torch_type().to_string(),
                },
                depth,
                index,
                label: layer.label.clone(),
                module: layer.module.clone(),
                output: batch_shape(&shape.output),
                params: shape.params,
                receptive_field,
            });
        }
        let total_params = arch.param_count();
        let mult_adds = shapes.iter().map(|s| s.mult_adds).sum();
        Ok(Summary {
            arch: arch.name.clone(),
            input: arch.input,
            rows,
            sections,
            total_params,
            mult_adds,
            torchsummary_mult_adds: mult_adds + container_params,
            input_mb: arch.input.iter().product::<i64>() as f64 * 4.0 / MB,
            forward_backward_mb: 2.0 * outputs_with_params as f64 * 4.0 / MB,
            params_mb: total_params as f64 * 4.0 / MB,
        })
    }

    /// Estimated total size in MiB: input + forward/backward + parameters.
    pub fn total_mb(&self) -> f64 {
        self.input_mb + self.forward_backward_mb + self.params_mb
    }
}

fn batch_shape(shape: &[i64]) -> Vec<i64> {
    std::iter::once(-1).chain(shape.iter().copied()).collect()
}

/// `1234567` -> `1,234,567`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn shape_str(shape: &[i64]) -> String {
    format!(
        "[{}]",
        shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rule = "=".repeat(112);
        writeln!(f, "{rule}")?;
        writeln!(
            f,
            "{:<41}{:<26}{:<16}{:<16}RF px / stride",
            "Layer (type:depth-idx)", "Output Shape", "Param #", "Module"
        )?;
        writeln!(f, "{rule}")?;
        let mut sections = self.sections.iter().peekable();
        for (i, row) in self.rows.iter().enumerate() {
            if let Some(sec) = sections.next_if(|s| s.first_row == i) {
                let name = format!("├─Sequential: 1-{}", sec.index);
                writeln!(
                    f,
                    "{:<41}{:<26}{:<16}{}",
                    name,
                    shape_str(&sec.output),
                    "--",
                    sec.name
                )?;
            }
            let name = match (row.depth, row.index) {
                (2, idx) => format!("|    └─{}: 2-{idx}", row.layer_type),
                (_, 0) => format!("├─{}", row.layer_type),
                (_, idx) => format!("├─{}: 1-{idx}", row.layer_type),
            };
            let params = if row.params > 0 {
                thousands(row.params)
            } else {
                "--".into()
            };
            let rf = row
                .receptive_field
                .map(|(s, st)| format!("{s} / {st}"))
                .unwrap_or_default();
            let module = row.module.clone().unwrap_or_else(|| "(functional)".into());
            let line = format!(
                "{:<41}{:<26}{:<16}{:<16}{}",
                name,
                shape_str(&row.output),
                params,
                module,
                rf
            );
            writeln!(f, "{}", line.trim_end())?;
        }
        writeln!(f, "{rule}")?;
        writeln!(f, "Total params: {}", thousands(self.total_params))?;
        writeln!(f, "Trainable params: {}", thousands(self.total_params))?;
        writeln!(f, "Non-trainable params: 0")?;
        writeln!(f, "Total mult-adds (G): {:.2}", self.mult_adds as f64 / 1e9)?;
        writeln!(f, "{rule}")?;
        writeln!(f, "Input size (MB): {:.2}", self.input_mb)?;
        writeln!(
            f,
            "Forward/backward pass size (MB): {:.2}",
            self.forward_backward_mb
        )?;
        writeln!(f, "Params size (MB): {:.2}", self.params_mb)?;
        writeln!(f, "Estimated Total Size (MB): {:.2}", self.total_mb())?;
        writeln!(f, "{rule}")?;
        writeln!(
            f,
            "Mult-adds: conv and linear layers, one {}x{} image ({}).",
            self.input[1],
            self.input[2],
            thousands(self.mult_adds)
        )?;
        if self.torchsummary_mult_adds != self.mult_adds {
            writeln!(
                f,
                "  torch-summary 1.4.5 reports {:.2} G: it counts the weights of the {} Sequential containers a second time.",
                self.torchsummary_mult_adds as f64 / 1e9,
                self.sections.len()
            )?;
        }
        writeln!(f, "Sizes: float32, MiB; forward/backward = 2 x outputs of the layers with parameters (torch-summary's rule).")?;
        write!(f, "RF px / stride: receptive field side in input pixels and cumulative stride of each conv layer.")
    }
}

/// The `torch.nn.functional` name of a layer kind that is no module.
fn functional_name(kind: &crate::LayerKind) -> &'static str {
    use crate::LayerKind::*;
    match kind {
        Conv(_) => "conv2d",
        Relu => "relu",
        Lrn(_) => "local_response_norm",
        BatchNorm(_) => "batch_norm",
        MaxPool(_) => "max_pool2d",
        AdaptiveAvgPool { .. } => "adaptive_avg_pool2d",
        Flatten => "flatten",
        Dropout { .. } => "dropout",
        Linear(_) => "linear",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ArchConfig;
    use crate::ArchName;

    fn summary(name: ArchName, classes: i64) -> Summary {
        Summary::new(
            &Arch::builtin(
                name,
                &ArchConfig {
                    classes,
                    ..Default::default()
                },
            )
            .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn seed_summary_numbers_are_the_seeds() {
        let s = summary(ArchName::ZfnetSeed, 5);
        assert_eq!(s.total_params, 58_281_093);
        assert_eq!(format!("{:.2}", s.input_mb), "0.57");
        assert_eq!(format!("{:.2}", s.forward_backward_mb), "11.57");
        assert_eq!(format!("{:.2}", s.params_mb), "222.32");
        assert_eq!(format!("{:.2}", s.total_mb()), "234.46");
        assert_eq!(format!("{:.2}", s.mult_adds as f64 / 1e9), "1.16");
        assert_eq!(
            format!("{:.2}", s.torchsummary_mult_adds as f64 / 1e9),
            "1.22"
        );
    }

    #[test]
    fn seed_table_rows_read_like_torchsummary() {
        let text = summary(ArchName::ZfnetSeed, 5).to_string();
        for needle in [
            "|    └─Conv2d: 2-1                       [-1, 96, 110, 110]        14,208",
            "|    └─MaxPool2d: 2-13                   [-1, 256, 6, 6]           --",
            "|    └─Linear: 2-19                      [-1, 5]                   20,485",
            "Total params: 58,281,093",
            "Total mult-adds (G): 1.16",
            "Forward/backward pass size (MB): 11.57",
            "Params size (MB): 222.32",
            "Estimated Total Size (MB): 234.46",
            "torch-summary 1.4.5 reports 1.22 G",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    #[test]
    fn conv_rows_carry_receptive_fields() {
        let s = summary(ArchName::ZfnetSeed, 5);
        let rf: Vec<(i64, i64)> = s.rows.iter().filter_map(|r| r.receptive_field).collect();
        assert_eq!(rf, [(7, 2), (27, 8), (75, 16), (107, 16), (139, 16)]);
    }

    #[test]
    fn torchvision_alexnet_numbers() {
        let s = summary(ArchName::AlexnetTv, 1000);
        assert_eq!(s.total_params, 61_100_840);
        // torchvision's AlexNet: 0.71 GFLOPs (multiply-adds) per 224 image.
        assert_eq!(format!("{:.2}", s.mult_adds as f64 / 1e9), "0.71");
        assert!(s.to_string().contains("├─AdaptiveAvgPool2d: 1-2"));
    }

    #[test]
    fn thousands_separates_groups() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(58_281_093), "58,281,093");
        assert_eq!(thousands(-1234), "-1,234");
    }
}
