//! Reading delivery files: the SHA-256 of a file as found, and its lines streamed from a
//! `.zip` entry or a plain text file, never the whole file in memory.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};

/// Read buffer of the streams (lines are copied out of it one at a time).
const BUFFER: usize = 256 * 1024;

/// Hex SHA-256 of a file's bytes, streamed.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; BUFFER];
    loop {
        let read = file
            .read(&mut buffer)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Whether a name is a zip archive.
pub fn is_zip(path: &Path) -> bool {
    path.extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| extension.eq_ignore_ascii_case("zip"))
}

/// A stream of a file's text with its uncompressed size (for progress).
pub struct Text<'a> {
    /// The bytes, buffered.
    pub reader: Box<dyn BufRead + 'a>,
    /// Uncompressed size in bytes.
    pub size: u64,
}

/// Runs `read` on the text of `path`: the `.txt` entry of the same base name in a `.zip`
/// (or its only entry), or the file itself.
pub fn with_text<T>(
    path: &Path,
    read: impl FnOnce(Text<'_>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    if !is_zip(path) {
        let size = file.metadata().map(|meta| meta.len()).unwrap_or_default();
        return read(Text {
            reader: Box::new(BufReader::with_capacity(BUFFER, file)),
            size,
        });
    }
    let mut archive = zip::ZipArchive::new(BufReader::new(file))
        .with_context(|| format!("{} is not a readable zip archive", path.display()))?;
    let stem = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or_default();
    let index = archive
        .index_for_name(&format!("{stem}.txt"))
        .or_else(|| (archive.len() == 1).then_some(0))
        .with_context(|| {
            format!(
                "{} holds no {stem}.txt (entries: {})",
                path.display(),
                archive
                    .file_names()
                    .filter_map(Result::ok)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
    let entry = archive
        .by_index(index)
        .with_context(|| format!("cannot read the entry of {}", path.display()))?;
    let size = entry.size();
    read(Text {
        reader: Box::new(BufReader::with_capacity(BUFFER, entry)),
        size,
    })
}

/// Calls `each` with every line (line break removed) and its 1-based number, reusing one
/// buffer, with the bytes read so far. Stops early when `each` returns false.
pub fn for_each_line(
    reader: &mut dyn BufRead,
    mut each: impl FnMut(u64, &[u8], u64) -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let mut line = Vec::with_capacity(4096);
    let mut number = 0u64;
    let mut bytes = 0u64;
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(());
        }
        bytes += read as u64;
        number += 1;
        let mut text = line.as_slice();
        text = text.strip_suffix(b"\n").unwrap_or(text);
        text = text.strip_suffix(b"\r").unwrap_or(text);
        if !each(number, text, bytes)? {
            return Ok(());
        }
    }
}

/// Whether a line holds nothing but white space (such lines are not records).
pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// Records (non-blank lines) in a file's text.
pub fn count_records(path: &Path) -> anyhow::Result<u64> {
    with_text(path, |mut text| {
        let mut count = 0;
        for_each_line(text.reader.as_mut(), |_, line, _| {
            if !is_blank(line) {
                count += 1;
            }
            Ok(true)
        })
        .with_context(|| format!("cannot read {}", path.display()))?;
        Ok(count)
    })
}
