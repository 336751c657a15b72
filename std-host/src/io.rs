//! Input and output adapters: token ids and outputs as `.npy`, text as bytes, CSV numeric
//! streams, WAV audio.

use std::io::{BufWriter, Write};

use npyz::WriterBuilder;
use std::path::Path;

use crate::error::HostError;

/// Reads token ids from a 1-D `.npy` of any integer dtype (negative ids are an error).
pub fn read_tokens_npy(path: &Path) -> Result<Vec<u32>, HostError> {
    let bytes = std::fs::read(path).map_err(|e| HostError::io(path, e))?;
    parse_tokens_npy(&bytes, path)
}

/// The `.npy` preamble's header length checked against the bytes there are, before the
/// reader allocates a buffer of that length (a 4 GiB claim in a 200-byte file was one).
fn check_npy_header(bytes: &[u8], path: &Path) -> Result<(), HostError> {
    let bad = |m: &str| HostError::input(path, format!("not a .npy file: {m}"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("no .npy magic"));
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(&format!("format version {v}"))),
    };
    if start + len > bytes.len() {
        return Err(bad(&format!(
            "its header claims {len} bytes, the file has {}",
            bytes.len() - start
        )));
    }
    // The header is a Python dict literal: `{'descr': '<f4', 'fortran_order': False,
    // 'shape': (3, 4), }`. Plain dtypes nest two deep; deeper nesting (structured dtypes,
    // which no reader here takes) makes the literal parser backtrack for minutes.
    let (mut depth, mut max, mut dicts) = (0i32, 0i32, 0);
    for &c in &bytes[start..start + len] {
        match c {
            b'{' | b'(' | b'[' => {
                depth += 1;
                max = max.max(depth);
                dicts += usize::from(c == b'{');
            }
            b'}' | b')' | b']' => depth -= 1,
            _ => {}
        }
    }
    if max > 3 || dicts != 1 {
        return Err(bad("its header is not a plain-dtype dict"));
    }
    Ok(())
}

/// [`read_tokens_npy`] of bytes in memory (`path` names them in errors).
pub fn parse_tokens_npy(bytes: &[u8], path: &Path) -> Result<Vec<u32>, HostError> {
    check_npy_header(bytes, path)?;
    let npy = npyz::NpyFile::new(bytes)
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
    parse_f32_npy(&bytes, path)
}

/// [`read_f32_npy`] of bytes in memory (`path` names them in errors).
pub fn parse_f32_npy(bytes: &[u8], path: &Path) -> Result<(Vec<u64>, Vec<f32>), HostError> {
    check_npy_header(bytes, path)?;
    let npy = npyz::NpyFile::new(bytes)
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
        return Err(HostError::input(
            path,
            format!(
                "{} values are not {rows} rows of {cols} (nothing written)",
                data.len()
            ),
        ));
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

/// Writes mono 32-bit float samples as a WAV file at `sample_rate`, through a temporary
/// file renamed into place (no half-written output on error). Non-finite samples are
/// refused (nothing written).
pub fn write_wav_f32(path: &Path, sample_rate: u32, samples: &[f32]) -> Result<(), HostError> {
    if let Some(i) = samples.iter().position(|v| !v.is_finite()) {
        return Err(HostError::input(
            path,
            format!("sample {i} is {} (nothing written)", samples[i]),
        ));
    }
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    write_via_temp(path, |tmp| {
        let mut w = hound::WavWriter::create(tmp, spec).map_err(|e| e.to_string())?;
        for &v in samples {
            w.write_sample(v).map_err(|e| e.to_string())?;
        }
        w.finalize().map_err(|e| e.to_string())
    })
}

/// Why a file of type `ft` may not be an output (`None`: a regular file, which an output
/// replaces whole). Outputs never replace, or write through, a symlink, directory, FIFO,
/// device or socket: `--out /dev/null` run as root must not replace the device.
pub fn output_refusal(ft: std::fs::FileType) -> Option<&'static str> {
    #[cfg(unix)]
    use std::os::unix::fs::FileTypeExt;
    if ft.is_file() {
        return None;
    }
    Some(if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_dir() {
        "a directory"
    } else {
        #[cfg(unix)]
        {
            if ft.is_fifo() {
                "a FIFO"
            } else if ft.is_char_device() {
                "a character device"
            } else if ft.is_block_device() {
                "a block device"
            } else if ft.is_socket() {
                "a socket"
            } else {
                "not a regular file"
            }
        }
        #[cfg(not(unix))]
        {
            "not a regular file"
        }
    })
}

/// Checks that `path` may be written as an output: absent, or a regular file (not followed
/// if it is a link). Every writer here and in the CLI calls it before writing.
pub fn check_output(path: &Path) -> Result<(), HostError> {
    match std::fs::symlink_metadata(path) {
        Ok(md) => match output_refusal(md.file_type()) {
            None => Ok(()),
            Some(what) => Err(HostError::Output {
                path: path.to_path_buf(),
                msg: format!("is {what}; outputs only create or replace regular files"),
            }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if dir.is_dir() {
                Ok(())
            } else {
                Err(HostError::Output {
                    path: path.to_path_buf(),
                    msg: format!("its directory {} does not exist", dir.display()),
                })
            }
        }
        Err(e) => Err(HostError::io(path, e)),
    }
}

/// A temporary sibling of `path` for writing it whole before a rename: hidden, named after
/// the process, keeping `path`'s extension (writers that pick the format from it).
pub fn temp_sibling(path: &Path) -> std::path::PathBuf {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    dir.join(format!(".{name}.tmp-{}{ext}", std::process::id()))
}

/// Writes `path` whole or not at all: checks it is a valid output ([`check_output`]), lets
/// `write` create the temporary sibling ([`temp_sibling`]), then renames it over `path`. On
/// any error the temporary file is removed and `path` is untouched.
pub fn write_via_temp(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(), HostError> {
    check_output(path)?;
    let tmp = temp_sibling(path);
    if let Err(msg) = write(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(HostError::Output {
            path: path.to_path_buf(),
            msg,
        });
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(HostError::io(path, e));
    }
    Ok(())
}

/// Writes a file via a temporary sibling and a rename (whole or not at all); refuses a
/// `path` that is not a regular file ([`check_output`]).
pub fn atomic_write(
    path: &Path,
    f: impl FnOnce(&mut BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), HostError> {
    check_output(path)?;
    let tmp = temp_sibling(path);
    let res = (|| {
        let file = std::fs::File::create_new(&tmp)?;
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

/// Reads a file of at most `max` bytes (a snapshot, a small input): a larger one is refused
/// from its metadata before anything is read.
pub fn read_small(path: &Path, max: u64, what: &str) -> Result<Vec<u8>, HostError> {
    let len = std::fs::metadata(path)
        .map_err(|e| HostError::io(path, e))?
        .len();
    if len > max {
        return Err(HostError::input(
            path,
            format!("{len} bytes: larger than any {what} of this model ({max} bytes)"),
        ));
    }
    std::fs::read(path).map_err(|e| HostError::io(path, e))
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
    // A byte-order mark (as spreadsheet exports write) is not part of the first field.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut cols = 0usize;
    let mut data = Vec::new();
    let mut first = true;
    for (ln, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split([',', ';', '\t']).map(str::trim).collect();
        let numbers: Vec<Option<f32>> = fields.iter().map(|f| f.parse::<f32>().ok()).collect();
        // Only a first row with no number in it is a header; anything else must be numbers.
        if first && numbers.iter().all(Option::is_none) && fields.iter().all(|f| !f.is_empty()) {
            first = false;
            continue;
        }
        first = false;
        let mut v = Vec::with_capacity(fields.len());
        for (c, (f, x)) in fields.iter().zip(&numbers).enumerate() {
            match x {
                Some(x) if x.is_finite() => v.push(*x),
                Some(_) => return Err(format!("line {}: column {} is not finite", ln + 1, c + 1)),
                None if f.is_empty() => {
                    return Err(format!(
                        "line {}: column {} is empty{}",
                        ln + 1,
                        c + 1,
                        if c + 1 == fields.len() {
                            " (a trailing separator?)"
                        } else {
                            ""
                        }
                    ))
                }
                None => {
                    return Err(format!(
                        "line {}: column {}: `{f}` is not a number",
                        ln + 1,
                        c + 1
                    ))
                }
            }
        }
        if cols == 0 {
            cols = v.len();
        } else if v.len() != cols {
            return Err(format!(
                "line {}: {} columns, expected {cols}",
                ln + 1,
                v.len()
            ));
        }
        data.extend(v);
    }
    if cols == 0 {
        return Err("no numeric rows".into());
    }
    Ok((cols, data))
}

/// Reads a WAV file as `(sample_rate, channels, interleaved samples in [-1, 1])`.
pub fn read_wav(path: &Path) -> Result<(u32, usize, Vec<f32>), HostError> {
    let r = hound::WavReader::open(path)
        .map_err(|e| HostError::input(path, format!("cannot read WAV: {e}")))?;
    wav_samples(r, path)
}

/// [`read_wav`] of bytes in memory (`path` names them in errors).
pub fn parse_wav(bytes: &[u8], path: &Path) -> Result<(u32, usize, Vec<f32>), HostError> {
    let r = hound::WavReader::new(std::io::Cursor::new(bytes))
        .map_err(|e| HostError::input(path, format!("cannot read WAV: {e}")))?;
    wav_samples(r, path)
}

fn wav_samples<R: std::io::Read>(
    mut r: hound::WavReader<R>,
    path: &Path,
) -> Result<(u32, usize, Vec<f32>), HostError> {
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
    if let Some(i) = samples.iter().position(|v| !v.is_finite()) {
        return Err(HostError::input(
            path,
            format!(
                "sample {} of channel {} is {} (a float WAV must hold finite samples)",
                i / (spec.channels.max(1) as usize),
                i % (spec.channels.max(1) as usize),
                samples[i]
            ),
        ));
    }
    Ok((spec.sample_rate, spec.channels as usize, samples))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(unix)]
    use std::os::unix::fs::FileTypeExt;

    /// Output paths: a regular file is replaced whole; a FIFO, a symlink (to a file outside
    /// the directory) and a directory are refused and left as they were. Everything lives
    /// in a temporary directory; no device node is touched.
    #[cfg(unix)]
    #[test]
    fn outputs_replace_only_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let d = dir.path();
        let write = |p: &Path| write_f32_npy(p, 1, 2, &[1.0, 2.0]);

        let file = d.join("y.npy");
        std::fs::write(&file, b"old").unwrap();
        write(&file).unwrap();
        assert_eq!(read_f32_npy(&file).unwrap().1, vec![1.0, 2.0]);

        let fifo = d.join("fifo.npy");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let e = write(&fifo).unwrap_err().to_string();
        assert!(e.contains("is a FIFO"), "{e}");
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo());

        let target = outside.path().join("target.npy");
        std::fs::write(&target, b"keep").unwrap();
        let link = d.join("link.npy");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = write(&link).unwrap_err().to_string();
        assert!(e.contains("is a symbolic link"), "{e}");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");

        let sub = d.join("sub");
        std::fs::create_dir(&sub).unwrap();
        let e = write(&sub).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");

        let e = write_via_temp(&fifo, |_| Ok(())).unwrap_err().to_string();
        assert!(e.contains("is a FIFO"), "{e}");
        // Nothing left behind but what the test made.
        let mut names: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["fifo.npy", "link.npy", "sub", "y.npy"]);
    }

    /// The file-type check alone, on the types a temporary directory can hold.
    #[cfg(unix)]
    #[test]
    fn the_output_check_names_each_file_type() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"").unwrap();
        let l = dir.path().join("l");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        let ty = |p: &Path| std::fs::symlink_metadata(p).unwrap().file_type();
        assert_eq!(output_refusal(ty(&f)), None);
        assert_eq!(output_refusal(ty(&l)), Some("a symbolic link"));
        assert_eq!(output_refusal(ty(dir.path())), Some("a directory"));
        assert!(check_output(&dir.path().join("absent")).is_ok());
        let e = check_output(&dir.path().join("no/such/dir/y.png")).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        assert!(check_output(&l).is_err());
    }

    #[test]
    fn csv_header_and_errors() {
        let (c, d) = parse_csv("a,b\n1,2\n3.5,-4\n").unwrap();
        assert_eq!((c, d), (2, vec![1.0, 2.0, 3.5, -4.0]));
        assert!(parse_csv("1,2\n3\n").unwrap_err().contains("line 2"));
        assert!(parse_csv("1,2\nx,3\n").unwrap_err().contains("line 2"));
        assert!(parse_csv("h\n").is_err());
        assert!(parse_csv("1,nan\n").is_err());
        // A byte-order mark is not a header; neither is a row with a trailing separator.
        assert_eq!(
            parse_csv("\u{feff}1,2\n3,4\n").unwrap(),
            (2, vec![1., 2., 3., 4.])
        );
        assert_eq!(parse_csv("\u{feff}a,b\n3,4\n").unwrap(), (2, vec![3., 4.]));
        let e = parse_csv("1,2,\n3,4,\n").unwrap_err();
        assert!(
            e.contains("line 1: column 3 is empty (a trailing separator?)"),
            "{e}"
        );
        let e = parse_csv("a,2\n3,4\n").unwrap_err();
        assert!(e.contains("line 1: column 1: `a` is not a number"), "{e}");
        let e = parse_csv("1,,2\n").unwrap_err();
        assert!(e.ends_with("line 1: column 2 is empty"), "{e}");
    }

    /// Found by fuzzing (fuzz/regressions/npy/header-len-oom): a version-3 header
    /// claiming 4 GiB in a 200-byte file made the reader allocate it; refused from the size.
    #[test]
    fn an_npy_header_longer_than_the_file_is_refused() {
        let p =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/npy/header-len-oom");
        let b = std::fs::read(&p).unwrap();
        let e = parse_f32_npy(&b, &p).unwrap_err().to_string();
        assert!(e.contains("its header claims"), "{e}");
        assert!(parse_tokens_npy(&b, &p).is_err());
        // And a header of nested braces that made the dict parser backtrack for minutes.
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/regressions/npy/nested-header-timeout");
        let b = std::fs::read(&p).unwrap();
        let e = parse_f32_npy(&b, &p).unwrap_err().to_string();
        assert!(e.contains("plain-dtype dict"), "{e}");
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
