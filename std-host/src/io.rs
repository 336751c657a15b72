//! Input and output adapters: token ids and outputs as `.npy`, text as bytes, CSV numeric
//! streams, WAV audio.

use std::io::{BufWriter, Write};

use npyz::WriterBuilder;
use std::path::Path;

use crate::error::HostError;

/// Reads token ids from a 1-D `.npy` of any integer dtype (negative ids are an error).
pub fn read_tokens_npy(path: &Path) -> Result<Vec<u32>, HostError> {
    let bytes = std::fs::read(path).map_err(|e| HostError::io(path, e))?;
    let npy = npyz::NpyFile::new(&bytes[..])
        .map_err(|e| HostError::input(path, format!("not a .npy file: {e}")))?;
    let shape = npy.shape().to_vec();
    if shape.len() != 1 && !(shape.len() == 2 && shape[0] == 1) {
        return Err(HostError::input(
            path,
            format!("token ids must be 1-D, got shape {shape:?}"),
        ));
    }
    let dtype = npy.dtype();
    let ids: Vec<i64> = match dtype.descr().trim_matches('\'') {
        "<i8" | "|i8" => npy.into_vec::<i64>(),
        "<i4" => npy
            .into_vec::<i32>()
            .map(|v| v.into_iter().map(i64::from).collect()),
        "<u4" => npy
            .into_vec::<u32>()
            .map(|v| v.into_iter().map(i64::from).collect()),
        "<i2" => npy
            .into_vec::<i16>()
            .map(|v| v.into_iter().map(i64::from).collect()),
        "<u2" => npy
            .into_vec::<u16>()
            .map(|v| v.into_iter().map(i64::from).collect()),
        "|u1" => npy
            .into_vec::<u8>()
            .map(|v| v.into_iter().map(i64::from).collect()),
        "<u8" => npy.into_vec::<u64>().map(|v| {
            v.into_iter()
                .map(|x| x.min(i64::MAX as u64) as i64)
                .collect()
        }),
        d => {
            return Err(HostError::input(
                path,
                format!("token ids must be integers, got dtype {d}"),
            ))
        }
    }
    .map_err(|e| HostError::input(path, format!("cannot read .npy data: {e}")))?;
    ids.into_iter()
        .enumerate()
        .map(|(i, t)| {
            u32::try_from(t)
                .map_err(|_| HostError::input(path, format!("token {i} = {t} is not a valid id")))
        })
        .collect()
}

/// Reads a `.npy` of f32 or f64 values as `(shape, data)`.
pub fn read_f32_npy(path: &Path) -> Result<(Vec<u64>, Vec<f32>), HostError> {
    let bytes = std::fs::read(path).map_err(|e| HostError::io(path, e))?;
    let npy = npyz::NpyFile::new(&bytes[..])
        .map_err(|e| HostError::input(path, format!("not a .npy file: {e}")))?;
    let shape = npy.shape().to_vec();
    let fortran = npy.order() == npyz::Order::Fortran;
    let data = match npy.dtype().descr().trim_matches('\'') {
        "<f4" => npy.into_vec::<f32>(),
        "<f8" => npy
            .into_vec::<f64>()
            .map(|v| v.into_iter().map(|x| x as f32).collect()),
        d => {
            return Err(HostError::input(
                path,
                format!("expected f32/f64 data, got dtype {d}"),
            ))
        }
    }
    .map_err(|e| HostError::input(path, format!("cannot read .npy data: {e}")))?;
    let data = if fortran {
        fortran_to_c(&shape, &data)
    } else {
        data
    };
    Ok((shape, data))
}

/// Reorders column-major (Fortran-order) data of `shape` into row-major order.
fn fortran_to_c(shape: &[u64], data: &[f32]) -> Vec<f32> {
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let mut out = Vec::with_capacity(data.len());
    let mut idx = vec![0usize; dims.len()];
    for _ in 0..data.len() {
        // Fortran offset: the first index varies fastest.
        let mut off = 0;
        let mut stride = 1;
        for (&i, &d) in idx.iter().zip(&dims) {
            off += i * stride;
            stride *= d;
        }
        out.push(data[off]);
        // Advance the row-major multi-index (the last index varies fastest).
        for k in (0..dims.len()).rev() {
            idx[k] += 1;
            if idx[k] < dims[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

/// Writes a row-major `[rows, cols]` f32 array as `.npy`, through a temporary file renamed
/// into place (no half-written output on error).
pub fn write_f32_npy(path: &Path, rows: usize, cols: usize, data: &[f32]) -> Result<(), HostError> {
    if data.len() != rows * cols {
        return Err(HostError::input(path, "output size mismatch"));
    }
    atomic_write(path, |w| {
        let mut out = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&[rows as u64, cols as u64])
            .writer(w)
            .begin_nd()?;
        out.extend(data.iter().copied())?;
        out.finish()
    })
}

/// Writes a file via a temporary sibling and a rename.
pub fn atomic_write(
    path: &Path,
    f: impl FnOnce(&mut BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), HostError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let res = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = BufWriter::new(file);
        f(&mut w)?;
        w.flush()?;
        w.get_ref().sync_all()?;
        drop(w);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(HostError::io(path, e));
    }
    Ok(())
}

/// Text as byte tokens (for byte-level models).
pub fn text_tokens(text: &str) -> Vec<u32> {
    text.bytes().map(u32::from).collect()
}

/// Reads a CSV of numbers: one row per step, one column per input channel. A first row
/// that does not parse as numbers is taken as a header. Empty lines are skipped.
pub fn read_csv(path: &Path) -> Result<(usize, Vec<f32>), HostError> {
    let text = std::fs::read_to_string(path).map_err(|e| HostError::io(path, e))?;
    parse_csv(&text).map_err(|m| HostError::input(path, m))
}

/// [`read_csv`] on a string; the error names the line.
pub fn parse_csv(text: &str) -> Result<(usize, Vec<f32>), String> {
    let mut cols = 0usize;
    let mut data = Vec::new();
    let mut first = true;
    for (ln, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split([',', ';', '\t']).map(str::trim).collect();
        let parsed: Result<Vec<f32>, _> = fields.iter().map(|f| f.parse::<f32>()).collect();
        match parsed {
            Ok(v) => {
                if cols == 0 {
                    cols = v.len();
                } else if v.len() != cols {
                    return Err(format!(
                        "line {}: {} columns, expected {cols}",
                        ln + 1,
                        v.len()
                    ));
                }
                if let Some(bad) = v.iter().position(|x| !x.is_finite()) {
                    return Err(format!("line {}: column {} is not finite", ln + 1, bad + 1));
                }
                data.extend(v);
            }
            Err(e) if first => {
                let _ = e; // header row
            }
            Err(e) => return Err(format!("line {}: {e}", ln + 1)),
        }
        first = false;
    }
    if cols == 0 {
        return Err("no numeric rows".into());
    }
    Ok((cols, data))
}

/// Reads a WAV file as `(sample_rate, channels, interleaved samples in [-1, 1])`.
pub fn read_wav(path: &Path) -> Result<(u32, usize, Vec<f32>), HostError> {
    let mut r = hound::WavReader::open(path)
        .map_err(|e| HostError::input(path, format!("cannot read WAV: {e}")))?;
    let spec = r.spec();
    let samples: Result<Vec<f32>, hound::Error> = match spec.sample_format {
        hound::SampleFormat::Float => r.samples::<f32>().collect(),
        hound::SampleFormat::Int => {
            let bits = spec.bits_per_sample;
            if bits == 0 || bits > 32 {
                return Err(HostError::input(
                    path,
                    format!("unsupported bits per sample {bits}"),
                ));
            }
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect()
        }
    };
    let samples = samples.map_err(|e| HostError::input(path, format!("bad WAV data: {e}")))?;
    Ok((spec.sample_rate, spec.channels as usize, samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_header_and_errors() {
        let (c, d) = parse_csv("a,b\n1,2\n3.5,-4\n").unwrap();
        assert_eq!((c, d), (2, vec![1.0, 2.0, 3.5, -4.0]));
        assert!(parse_csv("1,2\n3\n").unwrap_err().contains("line 2"));
        assert!(parse_csv("1,2\nx,3\n").unwrap_err().contains("line 2"));
        assert!(parse_csv("h\n").is_err());
        assert!(parse_csv("1,nan\n").is_err());
    }

    #[test]
    fn npy_roundtrip_and_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("y.npy");
        write_f32_npy(&p, 2, 3, &[1., 2., 3., 4., 5., 6.]).unwrap();
        let (shape, data) = read_f32_npy(&p).unwrap();
        assert_eq!(shape, vec![2, 3]);
        assert_eq!(data, vec![1., 2., 3., 4., 5., 6.]);
        // f32 is not a token dtype
        assert!(read_tokens_npy(&p).is_err());
        assert_eq!(text_tokens("\"in"), vec![0x22, 0x69, 0x6e]);
    }
}
