//! Architecture files: a network as a TOML layer table, so that any plain
//! convnet of the layers zftrain knows can be trained and looked inside
//! without writing Rust. The built-in architectures are written in the same
//! format (`configs/archs/*.toml`, checked against the built-ins by a test).
//!
//! ```toml
//! name = "tiny"
//! input = [3, 64, 64]
//!
//! [[layers]]
//! kind = "conv"          # conv, relu, lrn, batch_norm, max_pool,
//! out_channels = 16      # adaptive_avg_pool, flatten, dropout, linear
//! kernel = 5
//! stride = 2             # defaults: stride 1, padding 0, groups 1, bias true
//! module = "features.0"  # optional PyTorch module path (parameter names)
//!
//! [[layers]]
//! kind = "relu"
//! ```
//!
//! `in_channels` and `in_features` may be left out: they are taken from the
//! shape the previous layers produce (and checked against it when given).
//! Labels default to the kind and its count (`conv1`, `relu1`, `pool1`,
//! `norm1`, `fc1`, `drop1`, ...); a layer with parameters and no `module`
//! is a top-level module named by its label (`conv1.weight`). Every error names the file, the layer and
//! the key.

use serde::Deserialize;

use crate::layer::{BatchNormSpec, ConvSpec, Layer, LayerKind, LinearSpec, LrnSpec, PoolSpec};
use crate::shape::infer_shapes;
use crate::{Arch, ModelError};

/// The layer kinds of a file, with the keys each takes besides `kind`,
/// `label` and `module`: the one statement of the schema (the reader checks
/// against it, tests hold the writer and the README to it).
pub const KINDS: &[(&str, &[&str])] = &[
    (
        "conv",
        &[
            "in_channels",
            "out_channels",
            "kernel",
            "stride",
            "padding",
            "groups",
            "bias",
        ],
    ),
    ("relu", &[]),
    ("lrn", &["size", "alpha", "beta", "k", "groups"]),
    ("batch_norm", &["features", "eps", "momentum", "affine"]),
    ("max_pool", &["kernel", "stride", "padding", "ceil_mode"]),
    ("adaptive_avg_pool", &["height", "width"]),
    ("flatten", &[]),
    ("dropout", &["p"]),
    ("linear", &["in_features", "out_features", "bias"]),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    input: [i64; 3],
    layers: Vec<toml::Table>,
}

/// Reads an architecture from the text of a TOML file; `origin` (the
/// file's path) names it in errors. The result is validated: every layer
/// fits the shape the previous ones produce.
pub fn parse_arch(text: &str, origin: &str) -> Result<Arch, ModelError> {
    let bad = |message: String| ModelError::ArchFile {
        file: origin.to_string(),
        message,
    };
    let file: File = toml::from_str(text).map_err(|e| bad(e.to_string().trim_end().into()))?;
    if file.input.iter().any(|&d| d < 1) {
        return Err(bad(format!(
            "input {:?}: every size must be >= 1",
            file.input
        )));
    }
    let mut arch = Arch {
        name: file.name,
        input: file.input,
        layers: Vec::new(),
    };
    let mut counts = std::collections::HashMap::<&str, usize>::new();
    for (index, row) in file.layers.iter().enumerate() {
        let at = |message: String| {
            bad(format!(
                "layer {} ({}): {message}",
                index + 1,
                describe(row)
            ))
        };
        let field = Field { row, at: &at };
        let kind = field.kind()?;
        let layer_kind = read_kind(kind, &field, &arch)?;
        let count = counts.entry(kind).or_insert(0);
        *count += 1;
        let label = match row.get("label") {
            Some(v) => v
                .as_str()
                .ok_or_else(|| at("'label' must be a string".into()))?
                .to_string(),
            None => format!("{}{count}", short_label(kind)),
        };
        let module = read_module(&field, &layer_kind, &label, &arch)?;
        arch.layers.push(Layer {
            kind: layer_kind,
            label,
            module,
        });
        // Each layer is checked as it is added, so the error is this one's.
        infer_shapes(&arch).map_err(|e| match e {
            ModelError::Shape {
                index,
                label,
                message,
            } => bad(format!("layer {} ({label}): {message}", index + 1)),
            e => bad(e.to_string()),
        })?;
    }
    if arch.layers.is_empty() {
        return Err(bad("no layers".into()));
    }
    Ok(arch)
}

/// The layer of `kind` that a row describes; sizes left out are taken from
/// what the layers of `arch` so far produce.
fn read_kind<F: Fn(String) -> ModelError>(
    kind: &str,
    field: &Field<'_, F>,
    arch: &Arch,
) -> Result<LayerKind, ModelError> {
    // What the layers so far produce, for the inferred input sizes.
    let produced = || -> Result<Vec<i64>, ModelError> {
        Ok(match infer_shapes(arch)?.last() {
            Some(s) => s.output.clone(),
            None => arch.input.to_vec(),
        })
    };
    Ok(match kind {
        "conv" => {
            let inferred = produced()?.first().copied().unwrap_or(0);
            LayerKind::Conv(ConvSpec {
                in_channels: field.int_or("in_channels", inferred)?,
                out_channels: field.int("out_channels")?,
                kernel: field.int("kernel")?,
                stride: field.int_or("stride", 1)?,
                padding: field.int_or("padding", 0)?,
                groups: field.int_or("groups", 1)?,
                bias: field.bool_or("bias", true)?,
            })
        }
        "relu" => LayerKind::Relu,
        "lrn" => LayerKind::Lrn(LrnSpec {
            size: field.int("size")?,
            alpha: field.float("alpha")?,
            beta: field.float("beta")?,
            k: field.float("k")?,
            groups: field.int_or("groups", 1)?,
        }),
        "batch_norm" => {
            let inferred = produced()?.first().copied().unwrap_or(0);
            LayerKind::BatchNorm(BatchNormSpec {
                features: field.int_or("features", inferred)?,
                eps: field.float_or("eps", 1e-5)?,
                momentum: field.float_or("momentum", 0.1)?,
                affine: field.bool_or("affine", true)?,
            })
        }
        "max_pool" => {
            let kernel = field.int("kernel")?;
            LayerKind::MaxPool(PoolSpec {
                kernel,
                stride: field.int_or("stride", kernel)?,
                padding: field.int_or("padding", 0)?,
                ceil_mode: field.bool_or("ceil_mode", false)?,
            })
        }
        "adaptive_avg_pool" => LayerKind::AdaptiveAvgPool {
            height: field.int("height")?,
            width: field.int("width")?,
        },
        "flatten" => LayerKind::Flatten,
        "dropout" => {
            let p = field.float("p")?;
            if !(0.0..1.0).contains(&p) {
                return Err((field.at)(format!("p must be in [0, 1), got {p}")));
            }
            LayerKind::Dropout { p }
        }
        "linear" => {
            let inferred = match produced()?.as_slice() {
                [f] => *f,
                _ => 0,
            };
            LayerKind::Linear(LinearSpec {
                in_features: field.int_or("in_features", inferred)?,
                out_features: field.int("out_features")?,
                bias: field.bool_or("bias", true)?,
            })
        }
        _ => unreachable!("every kind of KINDS is matched"),
    })
}

/// The PyTorch module path of a row's layer: its `module`, checked and
/// unique in `arch`, else the label for a layer with parameters or buffers.
fn read_module<F: Fn(String) -> ModelError>(
    field: &Field<'_, F>,
    kind: &LayerKind,
    label: &str,
    arch: &Arch,
) -> Result<Option<String>, ModelError> {
    let module = match field.row.get("module") {
        Some(v) => {
            let m = v
                .as_str()
                .ok_or_else(|| (field.at)("'module' must be a string".into()))?;
            if m.split('.').any(|part| {
                part.is_empty() || !part.chars().all(|c| c.is_alphanumeric() || c == '_')
            }) {
                return Err((field.at)(format!(
                    "module '{m}' is not a PyTorch module path (names of letters, digits and _ joined by dots)"
                )));
            }
            Some(m.to_string())
        }
        // Parameters need a name: the label's, as a top-level module.
        None if kind.param_count() > 0 || !kind.buffer_shapes().is_empty() => {
            Some(label.to_string())
        }
        None => None,
    };
    if let Some(m) = &module {
        if let Some(other) = arch.layers.iter().find(|l| l.module.as_ref() == Some(m)) {
            return Err((field.at)(format!(
                "module '{m}' is also the module of {}: each layer needs its own",
                other.label
            )));
        }
    }
    Ok(module)
}

/// Sets the output size of `arch`'s last linear layer to `classes` (what
/// `--classes` does for a file, as for the built-ins), checked again.
pub fn set_classes(arch: &mut Arch, classes: i64) -> Result<(), ModelError> {
    if classes < 1 {
        return Err(ModelError::BadClasses(classes));
    }
    let last = arch
        .layers
        .iter_mut()
        .rev()
        .find_map(|l| match &mut l.kind {
            LayerKind::Linear(spec) => Some(spec),
            _ => None,
        });
    let Some(spec) = last else {
        return Err(ModelError::ArchFile {
            file: arch.name.clone(),
            message: "has no linear layer whose outputs could be the classes".into(),
        });
    };
    spec.out_features = classes;
    arch.validate()
}

/// The TOML text of `arch`, every key written out (what [`parse_arch`]
/// reads back to the same architecture).
pub fn write_arch(arch: &Arch) -> String {
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    let mut out = format!(
        "name = {}\ninput = [{}, {}, {}]\n",
        quote(&arch.name),
        arch.input[0],
        arch.input[1],
        arch.input[2]
    );
    for layer in &arch.layers {
        out.push_str("\n[[layers]]\n");
        let mut line = |key: &str, value: String| out.push_str(&format!("{key} = {value}\n"));
        let kind = layer.kind.name();
        line("kind", format!("\"{kind}\""));
        line("label", quote(&layer.label));
        if let Some(m) = &layer.module {
            line("module", quote(m));
        }
        for (key, value) in layer_keys(&layer.kind) {
            line(key, value);
        }
    }
    out
}

/// The keys of a layer kind with their values, in file order.
fn layer_keys(kind: &LayerKind) -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    match kind {
        LayerKind::Conv(c) => {
            v.push(("in_channels", c.in_channels.to_string()));
            v.push(("out_channels", c.out_channels.to_string()));
            v.push(("kernel", c.kernel.to_string()));
            v.push(("stride", c.stride.to_string()));
            v.push(("padding", c.padding.to_string()));
            v.push(("groups", c.groups.to_string()));
            v.push(("bias", c.bias.to_string()));
        }
        LayerKind::Lrn(l) => {
            v.push(("size", l.size.to_string()));
            v.push(("alpha", format!("{:?}", l.alpha)));
            v.push(("beta", format!("{:?}", l.beta)));
            v.push(("k", format!("{:?}", l.k)));
            v.push(("groups", l.groups.to_string()));
        }
        LayerKind::BatchNorm(b) => {
            v.push(("features", b.features.to_string()));
            v.push(("eps", format!("{:?}", b.eps)));
            v.push(("momentum", format!("{:?}", b.momentum)));
            v.push(("affine", b.affine.to_string()));
        }
        LayerKind::MaxPool(p) => {
            v.push(("kernel", p.kernel.to_string()));
            v.push(("stride", p.stride.to_string()));
            v.push(("padding", p.padding.to_string()));
            v.push(("ceil_mode", p.ceil_mode.to_string()));
        }
        LayerKind::AdaptiveAvgPool { height, width } => {
            v.push(("height", height.to_string()));
            v.push(("width", width.to_string()));
        }
        LayerKind::Dropout { p } => v.push(("p", format!("{p:?}"))),
        LayerKind::Linear(l) => {
            v.push(("in_features", l.in_features.to_string()));
            v.push(("out_features", l.out_features.to_string()));
            v.push(("bias", l.bias.to_string()));
        }
        LayerKind::Relu | LayerKind::Flatten => {}
    }
    v
}

/// The first difference between two tables' input and layers (labels and
/// names aside), for errors; `None` when they compute the same network.
pub fn table_difference(a: &Arch, b: &Arch) -> Option<String> {
    if a.input != b.input {
        return Some(format!("input {:?} vs {:?}", a.input, b.input));
    }
    if let Some((i, (x, y))) = a
        .layers
        .iter()
        .zip(&b.layers)
        .enumerate()
        .find(|(_, (x, y))| x.kind != y.kind || x.module != y.module)
    {
        return Some(format!(
            "layer {} is {} vs {}",
            i + 1,
            describe_layer(x),
            describe_layer(y)
        ));
    }
    (a.layers.len() != b.layers.len())
        .then(|| format!("{} layers vs {}", a.layers.len(), b.layers.len()))
}

/// One layer as a file would write it: `conv3 (conv: in_channels = 64, ...)`.
pub fn describe_layer(layer: &Layer) -> String {
    let keys: Vec<String> = layer_keys(&layer.kind)
        .into_iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    if keys.is_empty() {
        format!("{} ({})", layer.label, layer.kind.name())
    } else {
        format!(
            "{} ({}: {})",
            layer.label,
            layer.kind.name(),
            keys.join(", ")
        )
    }
}

fn short_label(kind: &str) -> &'static str {
    match kind {
        "conv" => "conv",
        "relu" => "relu",
        "lrn" => "norm",
        "batch_norm" => "bn",
        "max_pool" => "pool",
        "adaptive_avg_pool" => "avgpool",
        "flatten" => "flatten",
        "dropout" => "drop",
        _ => "fc",
    }
}

/// `kind` and `label` of a row, for error messages.
fn describe(row: &toml::Table) -> String {
    let get = |k: &str| row.get(k).and_then(|v| v.as_str());
    match (get("label"), get("kind")) {
        (Some(l), _) => l.to_string(),
        (None, Some(k)) => k.to_string(),
        (None, None) => "?".into(),
    }
}

/// Typed reads of one row's keys, with errors that name the key.
struct Field<'a, F: Fn(String) -> ModelError> {
    row: &'a toml::Table,
    at: &'a F,
}

impl<F: Fn(String) -> ModelError> Field<'_, F> {
    /// The row's `kind`, one of [`KINDS`], its keys checked against the
    /// kind's.
    fn kind(&self) -> Result<&'static str, ModelError> {
        let kind = self
            .row
            .get("kind")
            .and_then(|v| v.as_str())
            .ok_or_else(|| (self.at)("has no 'kind'".into()))?;
        let Some(&(kind, keys)) = KINDS.iter().find(|(k, _)| *k == kind) else {
            let known: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
            return Err((self.at)(format!(
                "unknown kind '{kind}' (known: {})",
                known.join(", ")
            )));
        };
        for key in self.row.keys() {
            if !["kind", "label", "module"].contains(&key.as_str()) && !keys.contains(&key.as_str())
            {
                return Err((self.at)(format!(
                    "'{key}' is not a key of {kind} (its keys: {})",
                    if keys.is_empty() {
                        "none".to_string()
                    } else {
                        keys.join(", ")
                    }
                )));
            }
        }
        Ok(kind)
    }

    fn int_or(&self, key: &str, default: i64) -> Result<i64, ModelError> {
        match self.row.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_integer()
                .ok_or_else(|| (self.at)(format!("'{key}' must be an integer, got {v}"))),
        }
    }

    fn int(&self, key: &str) -> Result<i64, ModelError> {
        match self.row.get(key) {
            None => Err((self.at)(format!("needs '{key}'"))),
            Some(_) => self.int_or(key, 0),
        }
    }

    fn float(&self, key: &str) -> Result<f64, ModelError> {
        match self.row.get(key) {
            None => Err((self.at)(format!("needs '{key}'"))),
            Some(v) => v
                .as_float()
                .or_else(|| v.as_integer().map(|i| i as f64))
                .ok_or_else(|| (self.at)(format!("'{key}' must be a number, got {v}"))),
        }
    }

    fn float_or(&self, key: &str, default: f64) -> Result<f64, ModelError> {
        match self.row.get(key) {
            None => Ok(default),
            Some(_) => self.float(key),
        }
    }

    fn bool_or(&self, key: &str, default: bool) -> Result<bool, ModelError> {
        match self.row.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| (self.at)(format!("'{key}' must be true or false, got {v}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ArchConfig;
    use crate::ArchName;

    #[test]
    fn the_writer_writes_exactly_the_keys_the_schema_gives_every_kind() {
        let bn = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/archs/vgg11-bn.toml"),
        )
        .unwrap();
        let mut tables = vec![parse_arch(&bn, "vgg11-bn.toml").unwrap()];
        tables.extend(ArchName::ALL.map(|n| Arch::builtin(n, &ArchConfig::default()).unwrap()));
        let mut seen = std::collections::BTreeSet::new();
        for layer in tables.iter().flat_map(|t| &t.layers) {
            let kind = layer.kind.name();
            let schema = KINDS
                .iter()
                .find(|(k, _)| *k == kind)
                .expect("a kind of the schema")
                .1;
            let written: Vec<&str> = layer_keys(&layer.kind)
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            assert_eq!(written, schema, "{kind}");
            seen.insert(kind);
        }
        assert_eq!(
            seen.len(),
            KINDS.len(),
            "every kind is written somewhere: {seen:?}"
        );
    }

    #[test]
    fn every_built_in_writes_and_reads_back_the_same() {
        for name in ArchName::ALL {
            let arch = Arch::builtin(name, &ArchConfig::default()).unwrap();
            let text = write_arch(&arch);
            let back = parse_arch(&text, "mem.toml").unwrap();
            assert_eq!(back, arch, "{}", name.as_str());
        }
    }

    #[test]
    fn the_shipped_files_are_the_built_ins() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/archs");
        for name in ArchName::ALL {
            let path = dir.join(format!("{}.toml", name.as_str()));
            // ZFTRAIN_WRITE_ARCHS=1 rewrites the files from the built-ins
            // (after a deliberate change to one of them).
            if std::env::var_os("ZFTRAIN_WRITE_ARCHS").is_some() {
                let arch = Arch::builtin(name, &ArchConfig::default()).unwrap();
                let head = format!(
                    "# The built-in `{0}` architecture as a layer table (zftrain's\n\
                     # architecture file format; `--arch {0}` is the same network).\n\n",
                    name.as_str()
                );
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, head + &write_arch(&arch)).unwrap();
            }
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let from_file = parse_arch(&text, &path.display().to_string()).unwrap();
            let builtin = Arch::builtin(name, &ArchConfig::default()).unwrap();
            assert_eq!(
                from_file,
                builtin,
                "{} differs from the built-in",
                path.display()
            );
        }
    }

    #[test]
    fn sizes_are_inferred_and_labels_numbered() {
        let text = r#"
            name = "tiny"
            input = [3, 32, 32]
            [[layers]]
            kind = "conv"
            out_channels = 8
            kernel = 3
            padding = 1
            [[layers]]
            kind = "relu"
            [[layers]]
            kind = "max_pool"
            kernel = 2
            [[layers]]
            kind = "flatten"
            [[layers]]
            kind = "linear"
            out_features = 10
        "#;
        let arch = parse_arch(text, "tiny.toml").unwrap();
        let labels: Vec<&str> = arch.layers.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(labels, ["conv1", "relu1", "pool1", "flatten1", "fc1"]);
        // Layers with parameters are named by their labels; the others are no modules.
        let modules: Vec<Option<&str>> = arch.layers.iter().map(|l| l.module.as_deref()).collect();
        assert_eq!(modules, [Some("conv1"), None, None, None, Some("fc1")]);
        assert_eq!(arch.param_names()[0].0, "conv1.weight");
        assert_eq!(
            arch.layers[0].kind,
            LayerKind::Conv(ConvSpec {
                in_channels: 3,
                out_channels: 8,
                kernel: 3,
                stride: 1,
                padding: 1,
                groups: 1,
                bias: true,
            })
        );
        match &arch.layers[4].kind {
            LayerKind::Linear(l) => assert_eq!(l.in_features, 8 * 16 * 16),
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn errors_name_the_file_the_layer_and_the_key() {
        let head = "name = \"t\"\ninput = [3, 32, 32]\n";
        let cases = [
            (
                "[[layers]]\nkind = \"conv\"\nkernel = 3\n",
                "layer 1 (conv): needs 'out_channels'",
            ),
            ("[[layers]]\nkind = \"deconv\"\n", "unknown kind 'deconv'"),
            (
                "[[layers]]\nkind = \"relu\"\np = 0.5\n",
                "'p' is not a key of relu",
            ),
            (
                "[[layers]]\nkind = \"conv\"\nout_channels = 4\nkernel = \"3\"\n",
                "'kernel' must be an integer",
            ),
            (
                "[[layers]]\nkind = \"conv\"\nin_channels = 4\nout_channels = 4\nkernel = 3\n",
                "has 4 input channels but receives 3",
            ),
            (
                "[[layers]]\nlabel = \"fc6\"\nkind = \"linear\"\nout_features = 4\n",
                "layer 1 (fc6): has 0 input features but receives [3, 32, 32]",
            ),
            (
                "[[layers]]\nkind = \"dropout\"\np = 1.5\n",
                "p must be in [0, 1)",
            ),
            ("colour = 1\n[[layers]]\nkind = \"relu\"\n", "colour"),
            (
                "[[layers]]\nkind = \"conv\"\nout_channels = 4\nkernel = 3\nmodule = \"f.0\"\n[[layers]]\nkind = \"conv\"\nout_channels = 4\nkernel = 3\nmodule = \"f.0\"\n",
                "layer 2 (conv): module 'f.0' is also the module of conv1",
            ),
            (
                "[[layers]]\nkind = \"conv\"\nout_channels = 4\nkernel = 3\nmodule = \"f..0\"\n",
                "module 'f..0' is not a PyTorch module path",
            ),
            (
                "[[layers]]\nkind = \"conv\"\nout_channels = 4\nkernel = 33\n",
                "layer 1 (conv1)",
            ),
            (
                "[[layers]]\nkind = \"batch_norm\"\nfeatures = 5\n",
                "layer 1 (bn1): has 5 features but receives 3 channels",
            ),
            (
                "[[layers]]\nkind = \"batch_norm\"\neps = 0\n",
                "eps must be > 0",
            ),
        ];
        for (body, want) in cases {
            let err = parse_arch(&format!("{head}{body}"), "my.toml")
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("my.toml: "), "{err}");
            assert!(err.contains(want), "wanted '{want}' in: {err}");
        }
    }
}
