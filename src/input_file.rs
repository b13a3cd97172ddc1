//! Reading user files: THE one place every input file (cluster config, policy file, policies
//! directory entry, recorded metrics, backtest trace, HAProxy template and config) is read.
//! Only regular files are read, and at most a fixed number of bytes, so that `/dev/zero`, a
//! FIFO or a directory is refused at once with an error naming the path instead of hanging
//! or growing without bound. The rules are documented in docs/usage.md, "Input rules".
//! Files the tool writes at a path the user gives (`backtest --plot`, `demo --log-file`) are
//! checked here too ([`output_path`]): writing into a FIFO would block as reading one does.

use crate::core::input::{InputError, MAX_INPUT_BYTES};
use std::fs::{File, Metadata};
use std::io::Read;
use std::path::Path;

/// Limit for configs, policies and HAProxy files: 4 MiB.
pub const MAX_CONFIG_BYTES: u64 = MAX_INPUT_BYTES as u64;
/// Limit for data files (backtest traces, recorded metrics): 64 MiB. Three years of 1-minute
/// trace samples (the longest trace accepted) are about 45 MB.
pub const MAX_DATA_BYTES: u64 = 64 * 1024 * 1024;

/// What a non-regular file is, for the message.
fn kind(meta: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

fn check_regular(shown: &str, meta: &Metadata) -> Result<(), InputError> {
    if meta.is_file() {
        Ok(())
    } else {
        Err(InputError::new(
            shown,
            "",
            format!("is {}, not a regular file", kind(meta)),
        ))
    }
}

fn too_large(shown: &str, size: u64, limit: u64) -> InputError {
    InputError::new(
        shown,
        "",
        format!("file is {size} bytes or more; the limit is {limit} bytes"),
    )
}

/// Read at most `limit` bytes of the regular file at `path`. The file type is checked before
/// opening (opening a FIFO for reading would block) and again on the opened file (the path
/// may have been replaced in between); the read stops one byte past `limit`, so a file that
/// grows while it is read cannot make it unbounded either.
pub fn read_bytes(path: &Path, limit: u64) -> Result<Vec<u8>, InputError> {
    let shown = path.display().to_string();
    let cannot = |e: std::io::Error| InputError::new(&shown, "", format!("cannot read: {e}"));
    let before = std::fs::metadata(path).map_err(cannot)?;
    check_regular(&shown, &before)?;
    if before.len() > limit {
        return Err(too_large(&shown, before.len(), limit));
    }
    let file = File::open(path).map_err(cannot)?;
    let opened = file.metadata().map_err(cannot)?;
    check_regular(&shown, &opened)?;
    let mut bytes = Vec::with_capacity(opened.len().min(limit) as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(&shown, bytes.len() as u64, limit));
    }
    Ok(bytes)
}

/// [`read_bytes`], then UTF-8: a file that is not UTF-8 text is bad input too.
pub fn read_text(path: &Path, limit: u64) -> Result<String, InputError> {
    let bytes = read_bytes(path, limit)?;
    String::from_utf8(bytes).map_err(|e| {
        InputError::new(
            &path.display().to_string(),
            "",
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Check a path the tool is to write to: absent, or a regular file (opening a FIFO for
/// writing blocks until a reader comes; a device or directory is no place for the output).
/// Checked before any work is done, so a bad path costs nothing.
pub fn output_path(path: &Path) -> Result<(), InputError> {
    match std::fs::metadata(path) {
        Ok(meta) => check_regular(&path.display().to_string(), &meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(InputError::new(
            &path.display().to_string(),
            "",
            format!("cannot write: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_path_must_be_absent_or_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out.svg");
        output_path(&file).unwrap();
        std::fs::write(&file, "old").unwrap();
        output_path(&file).unwrap();
        let e = output_path(dir.path()).unwrap_err();
        assert!(
            e.to_string().contains("is a directory, not a regular file"),
            "{e}"
        );
        let fifo = dir.path().join("f");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let e = output_path(&fifo).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
        let e = output_path(Path::new("/dev/full")).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
    }

    #[test]
    fn a_regular_file_within_the_limit_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.yaml");
        std::fs::write(&p, "abc").unwrap();
        assert_eq!(read_text(&p, 3).unwrap(), "abc");
        let e = read_text(&p, 2).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: file is 3 bytes", p.display())),
            "{e}"
        );
        assert!(e.contains("the limit is 2 bytes"), "{e}");
    }

    #[test]
    fn devices_and_directories_are_refused_by_type() {
        let e = read_bytes(Path::new("/dev/zero"), 10).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/dev/zero: is a character device, not a regular file"
        );
        let dir = tempfile::tempdir().unwrap();
        let e = read_bytes(dir.path(), 10).unwrap_err().to_string();
        assert!(e.ends_with("is a directory, not a regular file"), "{e}");
    }

    #[test]
    fn binary_is_not_text() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b");
        std::fs::write(&p, b"ok\xff").unwrap();
        let e = read_text(&p, 10).unwrap_err().to_string();
        assert!(
            e.ends_with("not UTF-8 text (invalid byte at offset 2)"),
            "{e}"
        );
    }
}
