//! Named tensors to and from safetensors files, with strict loading into a
//! model's variables: every name present, no extra names, every shape equal,
//! floating-point dtypes only. Nothing is copied until everything checks out,
//! so a refused file leaves the model as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use std::io::Write;

use safetensors::tensor::Dtype;
use safetensors::SafeTensors;
use tch::{Device, Kind, Tensor};

use crate::{atomic, CheckpointError};

/// The `__metadata__` string map of a safetensors file.
pub type Metadata = BTreeMap<String, String>;

/// A model variable to fill: its PyTorch name and the tensor to copy into.
pub type Expected = (String, Tensor);

fn dtype_of(kind: Kind) -> Option<Dtype> {
    Some(match kind {
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Int64 => Dtype::I64,
        Kind::Int => Dtype::I32,
        Kind::Uint8 => Dtype::U8,
        Kind::Int8 => Dtype::I8,
        Kind::Bool => Dtype::BOOL,
        _ => return None,
    })
}

fn kind_of(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::U8 => Kind::Uint8,
        Dtype::I8 => Kind::Int8,
        Dtype::BOOL => Kind::Bool,
        _ => return None,
    })
}

/// Writes `tensors` (any device; copied to the CPU) with `metadata` to `path`
/// atomically. The bytes depend only on the content: tensors are laid out in
/// name order and the JSON header's keys are sorted, so the same weights
/// always give the same file (and the same checksum).
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: &Metadata,
) -> Result<(), CheckpointError> {
    let mut sorted: Vec<&(String, Tensor)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert(
            "__metadata__".into(),
            serde_json::to_value(metadata).expect("strings serialize"),
        );
    }
    let mut blobs = Vec::with_capacity(sorted.len());
    let mut offset = 0usize;
    for (name, tensor) in sorted {
        if name == "__metadata__" || header.contains_key(name.as_str()) {
            return Err(CheckpointError::format(
                path,
                format!("tensor name '{name}' is reserved or repeated"),
            ));
        }
        let t = tensor.f_to_device(Device::Cpu)?.f_contiguous()?;
        let kind = t.f_kind()?;
        let dtype = dtype_of(kind).ok_or_else(|| {
            CheckpointError::format(
                path,
                format!("tensor '{name}' has kind {kind:?}, which safetensors cannot store"),
            )
        })?;
        let numel = t.numel();
        let mut bytes = vec![0u8; numel * kind.elt_size_in_bytes()];
        t.f_copy_data_u8(&mut bytes, numel)?;
        header.insert(
            name.clone(),
            serde_json::json!({
                "dtype": dtype,
                "shape": t.size(),
                "data_offsets": [offset, offset + bytes.len()],
            }),
        );
        offset += bytes.len();
        blobs.push(bytes);
    }
    let mut json = serde_json::to_vec(&header).expect("a header always serializes");
    // Like the reference writer: pad the header with spaces to 8 bytes.
    json.resize(json.len().div_ceil(8) * 8, b' ');
    atomic::write_with(path, |file| {
        let mut out = std::io::BufWriter::new(file);
        out.write_all(&(json.len() as u64).to_le_bytes())?;
        out.write_all(&json)?;
        for blob in &blobs {
            out.write_all(blob)?;
        }
        out.flush()
    })
}

/// Reads every tensor of a safetensors file (sorted by name) and its metadata.
pub fn read_safetensors(path: &Path) -> Result<(Vec<(String, Tensor)>, Metadata), CheckpointError> {
    let bytes = std::fs::read(path).map_err(CheckpointError::io("reading", path))?;
    parse(path, &bytes)
}

/// What `torch.save` wrote, if `bytes` start like it: a zip archive (the
/// format since PyTorch 1.6) or a bare pickle (protocol 2 to 5, older files).
fn torch_save_kind(bytes: &[u8]) -> Option<&'static str> {
    match bytes {
        [b'P', b'K', 3, 4, ..] => Some("a zip archive"),
        [0x80, 2..=5, ..] => Some("a pickle"),
        _ => None,
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<(Vec<(String, Tensor)>, Metadata), CheckpointError> {
    if let Some(kind) = torch_save_kind(bytes) {
        let p = path.display();
        return Err(CheckpointError::format(
            path,
            format!(
                "a PyTorch file written by torch.save ({kind}), not safetensors; zftrain does not \
                 unpickle (a pickle can run code). Convert it where PyTorch is installed: \
                 python3 scripts/pth-to-safetensors {p} OUT.safetensors, or \
                 python3 -c \"import torch, safetensors.torch as st; \
                 st.save_file(torch.load('{p}', weights_only=True), 'OUT.safetensors')\""
            ),
        ));
    }
    let bad = |e: safetensors::SafeTensorError| {
        CheckpointError::format(path, format!("not a valid safetensors file: {e}"))
    };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(bad)?;
    let metadata: Metadata = header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let file = SafeTensors::deserialize(bytes).map_err(bad)?;
    let mut out = Vec::new();
    for (name, view) in file.tensors() {
        let kind = kind_of(view.dtype()).ok_or_else(|| CheckpointError::Dtype {
            path: path.to_path_buf(),
            name: name.clone(),
            dtype: format!("{:?}", view.dtype()),
            expected: "a type libtorch holds (F32, F64, F16, BF16, I64, I32, U8, I8, BOOL)",
        })?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let tensor = Tensor::f_from_data_size(view.data(), &shape, kind)?;
        out.push((name, tensor));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((out, metadata))
}

/// Loads `path` into `targets` strictly, as PyTorch's
/// `load_state_dict(strict=True)`: the file must hold exactly the targets'
/// names, with equal shapes and floating-point dtypes (converted to each
/// target's kind and device). Returns the file's metadata. On any error no
/// target has been modified.
pub fn load_strict(path: &Path, targets: &[Expected]) -> Result<Metadata, CheckpointError> {
    let (tensors, metadata) = read_safetensors(path)?;
    assign_strict(path, tensors, targets)?;
    Ok(metadata)
}

/// Copies `tensors` (read from `path`, named in errors) into `targets` with
/// the checks of [`load_strict`]; on error no target has been modified.
pub fn assign_strict(
    path: &Path,
    tensors: Vec<(String, Tensor)>,
    targets: &[Expected],
) -> Result<(), CheckpointError> {
    let mut by_name: BTreeMap<String, Tensor> = tensors.into_iter().collect();
    let wanted: BTreeSet<&str> = targets.iter().map(|(n, _)| n.as_str()).collect();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|n| !by_name.contains_key(**n))
        .map(|n| n.to_string())
        .collect();
    let unexpected: Vec<String> = by_name
        .keys()
        .filter(|n| !wanted.contains(n.as_str()))
        .cloned()
        .collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        return Err(CheckpointError::Names {
            path: path.to_path_buf(),
            missing,
            unexpected,
        });
    }
    let mut ready = Vec::with_capacity(targets.len());
    for (name, target) in targets {
        let src = by_name.remove(name).expect("checked present above");
        if src.size() != target.size() {
            return Err(CheckpointError::Shape {
                path: path.to_path_buf(),
                name: name.clone(),
                expected: target.size(),
                got: src.size(),
            });
        }
        // Floating targets (parameters, running statistics) take any
        // floating type; integer ones (a batch norm's counter) integers.
        let floating =
            |k: Kind| matches!(k, Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16);
        let integer = |k: Kind| {
            matches!(
                k,
                Kind::Int64 | Kind::Int | Kind::Int16 | Kind::Int8 | Kind::Uint8
            )
        };
        let (kind, want) = (src.f_kind()?, target.f_kind()?);
        if !(floating(want) && floating(kind) || integer(want) && integer(kind)) {
            return Err(CheckpointError::Dtype {
                path: path.to_path_buf(),
                name: name.clone(),
                dtype: format!("{kind:?}"),
                expected: if floating(want) {
                    "a floating-point type (F32, F16, BF16, F64)"
                } else {
                    "an integer type (I64, I32)"
                },
            });
        }
        ready.push((
            target,
            src.f_to_kind(target.kind())?.f_to_device(target.device())?,
        ));
    }
    tch::no_grad(|| -> Result<(), CheckpointError> {
        for (target, src) in ready {
            target.shallow_clone().f_copy_(&src)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::kind::FLOAT_CPU;

    #[test]
    fn torch_save_files_are_named_as_such_and_never_parsed() {
        let p = Path::new("model.pth");
        let zip = parse(p, b"PK\x03\x04 then the archive")
            .unwrap_err()
            .to_string();
        assert!(
            zip.contains("model.pth") && zip.contains("torch.save (a zip archive)"),
            "{zip}"
        );
        let pickle = parse(p, b"\x80\x02}q\x00").unwrap_err().to_string();
        assert!(pickle.contains("torch.save (a pickle)"), "{pickle}");
        let other = parse(p, b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
            .unwrap_err()
            .to_string();
        assert!(other.contains("not a valid safetensors file"), "{other}");
    }

    fn sample() -> Vec<(String, Tensor)> {
        vec![
            (
                "features.0.weight".into(),
                Tensor::randn([4, 3, 3, 3], FLOAT_CPU),
            ),
            ("features.0.bias".into(), Tensor::randn([4], FLOAT_CPU)),
            (
                "half".into(),
                Tensor::randn([2, 5], FLOAT_CPU).to_kind(Kind::BFloat16),
            ),
        ]
    }

    fn bytes_of(t: &Tensor) -> Vec<u8> {
        let mut b = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
        t.copy_data_u8(&mut b, t.numel());
        b
    }

    #[test]
    fn write_then_read_is_bit_exact_with_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let meta: Metadata = [("zftrain.arch".to_string(), "zfnet".to_string())].into();
        let original = sample();
        write_safetensors(&path, &original, &meta).unwrap();
        let (back, got_meta) = read_safetensors(&path).unwrap();
        assert_eq!(got_meta, meta);
        let want = sample_sorted(original);
        assert_eq!(want.len(), back.len());
        for ((n1, a), (n2, b)) in want.iter().zip(back.iter()) {
            assert_eq!(n1, n2);
            assert_eq!(a.kind(), b.kind());
            assert!(bytes_of(a) == bytes_of(b), "{n1} differs");
        }
    }

    #[test]
    fn the_same_content_gives_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let tensors = sample();
        let meta: Metadata = (0..20)
            .map(|i| (format!("key{i}"), i.to_string()))
            .collect();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        write_safetensors(&a, &tensors, &meta).unwrap();
        let reversed: Vec<(String, Tensor)> = tensors
            .iter()
            .rev()
            .map(|(n, t)| (n.clone(), t.shallow_clone()))
            .collect();
        write_safetensors(&b, &reversed, &meta).unwrap();
        assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
    }

    #[test]
    fn repeated_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let t = vec![
            ("w".to_string(), Tensor::zeros([1], FLOAT_CPU)),
            ("w".to_string(), Tensor::ones([1], FLOAT_CPU)),
        ];
        let err = write_safetensors(&dir.path().join("x"), &t, &Metadata::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("'w'"), "{err}");
        assert!(!dir.path().join("x").exists());
    }

    fn sample_sorted(mut v: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn targets() -> Vec<Expected> {
        vec![
            (
                "features.0.weight".into(),
                Tensor::zeros([4, 3, 3, 3], FLOAT_CPU),
            ),
            ("features.0.bias".into(), Tensor::zeros([4], FLOAT_CPU)),
        ]
    }

    fn file_with(tensors: Vec<(String, Tensor)>) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        write_safetensors(&path, &tensors, &Metadata::new()).unwrap();
        (dir, path)
    }

    #[test]
    fn strict_load_copies_values() {
        let src = sample();
        let (_d, path) = file_with(
            src[..2]
                .iter()
                .map(|(n, t)| (n.clone(), t.shallow_clone()))
                .collect(),
        );
        let t = targets();
        load_strict(&path, &t).unwrap();
        assert!(t[0].1.equal(&src[0].1));
        assert!(t[1].1.equal(&src[1].1));
    }

    #[test]
    fn strict_load_names_missing_extra_and_misshapen_tensors_and_changes_nothing() {
        let w = Tensor::randn([4, 3, 3, 3], FLOAT_CPU);
        let (_d, missing) = file_with(vec![("features.0.weight".into(), w.shallow_clone())]);
        let t = targets();
        let err = load_strict(&missing, &t).unwrap_err().to_string();
        assert!(
            err.contains("missing tensors: features.0.bias") && !err.contains("unexpected"),
            "{err}"
        );
        assert_eq!(
            t[0].1.abs().sum(Kind::Float).double_value(&[]),
            0.0,
            "nothing copied"
        );

        let (_d, extra) = file_with(vec![
            ("features.0.weight".into(), w.shallow_clone()),
            ("features.0.bias".into(), Tensor::zeros([4], FLOAT_CPU)),
            ("module.extra".into(), Tensor::zeros([1], FLOAT_CPU)),
        ]);
        let err = load_strict(&extra, &t).unwrap_err().to_string();
        assert!(
            err.contains("unexpected tensors") && err.contains("module.extra"),
            "{err}"
        );

        let (_d, shape) = file_with(vec![
            ("features.0.weight".into(), w.shallow_clone()),
            ("features.0.bias".into(), Tensor::ones([5], FLOAT_CPU)),
        ]);
        let err = load_strict(&shape, &t).unwrap_err().to_string();
        assert!(
            err.contains("'features.0.bias'") && err.contains("[5]") && err.contains("[4]"),
            "{err}"
        );
        assert_eq!(
            t[0].1.abs().sum(Kind::Float).double_value(&[]),
            0.0,
            "nothing copied"
        );
    }

    #[test]
    fn integer_weights_are_refused() {
        let (_d, path) = file_with(vec![
            (
                "features.0.weight".into(),
                Tensor::zeros([4, 3, 3, 3], (Kind::Int64, Device::Cpu)),
            ),
            ("features.0.bias".into(), Tensor::zeros([4], FLOAT_CPU)),
        ]);
        let err = load_strict(&path, &targets()).unwrap_err().to_string();
        assert!(
            err.contains("'features.0.weight'") && err.contains("dtype"),
            "{err}"
        );
    }

    #[test]
    fn garbage_and_truncated_files_are_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.safetensors");
        std::fs::write(&path, b"not a safetensors file at all").unwrap();
        let err = read_safetensors(&path).unwrap_err().to_string();
        assert!(
            err.contains("bad.safetensors") && err.contains("not a valid safetensors"),
            "{err}"
        );

        let (_d, good) = file_with(sample());
        let bytes = std::fs::read(&good).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
        assert!(read_safetensors(&path).is_err());
    }

    /// A safetensors file made of `header` (JSON) and `data` bytes.
    fn raw(header: &str, declared: Option<u64>, data: &[u8]) -> Vec<u8> {
        let n = declared.unwrap_or(header.len() as u64);
        let mut bytes = n.to_le_bytes().to_vec();
        bytes.extend(header.as_bytes());
        bytes.extend(data);
        bytes
    }

    #[test]
    fn hostile_headers_are_refused_without_allocating_what_they_claim() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostile.safetensors");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            // A header length of 2^60 bytes.
            ("huge header", raw("{}", Some(1 << 60), b"")),
            // A tensor claiming 2^40 bytes the file does not have.
            (
                "huge tensor",
                raw(
                    r#"{"w":{"dtype":"F32","shape":[1099511627776],"data_offsets":[0,4398046511104]}}"#,
                    None,
                    &[0; 8],
                ),
            ),
            // Two tensors sharing bytes.
            (
                "overlap",
                raw(
                    r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                    None,
                    &[0; 12],
                ),
            ),
            // Offsets that disagree with the shape.
            (
                "shape mismatch",
                raw(
                    r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                    None,
                    &[0; 8],
                ),
            ),
            // A dtype that does not exist.
            (
                "bad dtype",
                raw(
                    r#"{"a":{"dtype":"F31","shape":[2],"data_offsets":[0,8]}}"#,
                    None,
                    &[0; 8],
                ),
            ),
            // Not JSON.
            ("not json", raw("{\"a\":", None, b"")),
        ];
        for (what, bytes) in cases {
            std::fs::write(&path, bytes).unwrap();
            let err = match read_safetensors(&path) {
                Ok(_) => panic!("{what}: accepted"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains("hostile.safetensors"), "{what}: {err}");
        }
    }
}
