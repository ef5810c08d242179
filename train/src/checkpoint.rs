//! Checkpoints as plain safetensors (f32, named by module path), written atomically:
//!
//! ```text
//! <out>/checkpoints/step-000200/model.safetensors      weights (also the export format)
//! <out>/checkpoints/step-000200/optimizer.safetensors  AdamW moments: m.<path>, v.<path>
//! <out>/checkpoints/step-000200/state.json             step, tokens, data position, config
//! <out>/checkpoints/latest                             name of the newest complete one
//! ```
//!
//! A checkpoint folder is filled under a hidden temporary name and renamed into place;
//! `latest` is replaced (temp + rename) after it, so a kill at any point leaves the previous
//! checkpoint intact and `latest` pointing at a complete folder.
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::TrainError;

/// Path → (shape, values).
pub type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Writes `bytes` to `dest` atomically: a hidden temporary beside it, fsync, rename.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dest.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
    fs::write(&tmp, bytes).map_err(|e| TrainError::io(&tmp, e))?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| TrainError::io(&tmp, e))?;
    fs::rename(&tmp, dest).map_err(|e| TrainError::io(dest, e))
}

/// Writes `tensors` as a safetensors file (header padded to 8 bytes, F32 little-endian).
pub fn write_safetensors(
    path: &Path,
    tensors: &Tensors,
    metadata: &BTreeMap<String, String>,
) -> Result<(), TrainError> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert(
            "__metadata__".into(),
            serde_json::to_value(metadata).unwrap_or_default(),
        );
    }
    let mut offset = 0usize;
    for (name, (shape, values)) in tensors {
        let end = offset + values.len() * 4;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut json = serde_json::to_vec(&header).map_err(|e| TrainError::Checkpoint(e.to_string()))?;
    while json.len() % 8 != 0 {
        json.push(b' ');
    }
    let mut f = std::io::BufWriter::new(File::create(path).map_err(|e| TrainError::io(path, e))?);
    f.write_all(&(json.len() as u64).to_le_bytes())
        .map_err(|e| TrainError::io(path, e))?;
    f.write_all(&json).map_err(|e| TrainError::io(path, e))?;
    for (_, values) in tensors.values() {
        for v in values {
            f.write_all(&v.to_le_bytes()).map_err(|e| TrainError::io(path, e))?;
        }
    }
    let f = f.into_inner().map_err(|e| TrainError::io(path, e.into_error()))?;
    f.sync_all().map_err(|e| TrainError::io(path, e))
}

/// Reads a safetensors file written by [`write_safetensors`] (F32 only), validating every
/// offset so a truncated or foreign file is an error naming it, never a panic.
pub fn read_safetensors(path: &Path) -> Result<(Tensors, BTreeMap<String, String>), TrainError> {
    let bad = |why: String| TrainError::Checkpoint(format!("{}: {why}", path.display()));
    let bytes = fs::read(path).map_err(|e| TrainError::io(path, e))?;
    if bytes.len() < 8 {
        return Err(bad(format!(
            "{} bytes: truncated (not a safetensors file)",
            bytes.len()
        )));
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&bytes[..8]);
    let hlen = u64::from_le_bytes(n) as usize;
    if hlen > bytes.len() - 8 {
        return Err(bad(format!(
            "header of {hlen} bytes but the file has {}: truncated",
            bytes.len()
        )));
    }
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + hlen]).map_err(|e| bad(format!("header is not JSON: {e}")))?;
    let data = &bytes[8 + hlen..];
    let mut tensors = Tensors::new();
    let mut metadata = BTreeMap::new();
    for (name, v) in header {
        if name == "__metadata__" {
            metadata = serde_json::from_value(v).unwrap_or_default();
            continue;
        }
        if v.get("dtype").and_then(|d| d.as_str()) != Some("F32") {
            return Err(bad(format!("tensor {name} is not F32")));
        }
        let shape: Vec<usize> =
            serde_json::from_value(v["shape"].clone()).map_err(|e| bad(format!("{name}: shape: {e}")))?;
        let off: [usize; 2] =
            serde_json::from_value(v["data_offsets"].clone()).map_err(|e| bad(format!("{name}: offsets: {e}")))?;
        let numel: usize = shape.iter().product();
        if off[1] < off[0] || off[1] > data.len() || off[1] - off[0] != numel * 4 {
            return Err(bad(format!(
                "tensor {name} needs bytes {}..{} of {} in the data section: truncated or corrupt",
                off[0],
                off[1],
                data.len()
            )));
        }
        let values = data[off[0]..off[1]]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.insert(name, (shape, values));
    }
    Ok((tensors, metadata))
}

pub fn checkpoints_dir(out: &Path) -> PathBuf {
    out.join("checkpoints")
}

/// Fills a folder under a hidden temporary name beside `dest` (`fill` gets that path), then
/// replaces `dest` with it by rename: a kill at any point leaves the old `dest` or the new.
pub fn commit_dir(dest: &Path, fill: impl FnOnce(&Path) -> Result<(), TrainError>) -> Result<(), TrainError> {
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| TrainError::io(parent, e))?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp.{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    }
    fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    fill(&tmp)?;
    if dest.exists() {
        fs::remove_dir_all(dest).map_err(|e| TrainError::io(dest, e))?;
    }
    fs::rename(&tmp, dest).map_err(|e| TrainError::io(dest, e))
}

/// Commits a checkpoint folder built by `fill` (called with the temporary folder).
pub fn commit(
    out: &Path,
    step: u64,
    fill: impl FnOnce(&Path) -> Result<(), TrainError>,
) -> Result<PathBuf, TrainError> {
    let dir = checkpoints_dir(out);
    let name = format!("step-{step:06}");
    let dest = dir.join(&name);
    commit_dir(&dest, fill)?;
    write_atomic(&dir.join("latest"), name.as_bytes())?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| TrainError::io(&dir, e))?;
    Ok(dest)
}

/// The newest complete checkpoint folder, if any.
pub fn latest(out: &Path) -> Result<Option<PathBuf>, TrainError> {
    let dir = checkpoints_dir(out);
    let latest = dir.join("latest");
    if !latest.exists() {
        return Ok(None);
    }
    let name = fs::read_to_string(&latest).map_err(|e| TrainError::io(&latest, e))?;
    let path = dir.join(name.trim());
    if !path.is_dir() {
        return Err(TrainError::Checkpoint(format!(
            "{} names {}, which does not exist; remove `latest` to start over",
            latest.display(),
            path.display()
        )));
    }
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation_is_an_error() -> Result<(), TrainError> {
        let dir = tempfile::tempdir().map_err(|e| TrainError::io(Path::new("tmp"), e))?;
        let p = dir.path().join("x.safetensors");
        let mut t = Tensors::new();
        t.insert("a.weight".into(), (vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5]));
        t.insert("b".into(), (vec![1], vec![0.25]));
        let meta = BTreeMap::from([("format".to_owned(), "pt".to_owned())]);
        write_safetensors(&p, &t, &meta)?;
        let (back, m) = read_safetensors(&p)?;
        assert_eq!(back, t);
        assert_eq!(m, meta);
        let bytes = fs::read(&p).map_err(|e| TrainError::io(&p, e))?;
        for cut in [3, 20, bytes.len() - 2] {
            fs::write(&p, &bytes[..cut]).map_err(|e| TrainError::io(&p, e))?;
            let err = read_safetensors(&p).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                err.contains("x.safetensors") && (err.contains("truncated") || err.contains("JSON")),
                "{err}"
            );
        }
        Ok(())
    }
}
