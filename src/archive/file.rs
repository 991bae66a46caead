//! Where a backup is read from and written to: a path, or `-` for standard input/output, and
//! gzip (flate2) when the name ends in `.gz`. A file is written under `<name>.partial` and
//! renamed when complete, so a file of the given name is never a half export.

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

pub fn is_gzip(name: &str) -> bool {
    name.ends_with(".gz")
}

/// Lines of a backup file (`-` is standard input).
pub fn open_input(name: &str) -> std::io::Result<Box<dyn BufRead + Send>> {
    let raw: Box<dyn std::io::Read + Send> = if name == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(name)?)
    };
    Ok(if is_gzip(name) {
        Box::new(BufReader::with_capacity(
            1 << 16,
            MultiGzDecoder::new(BufReader::new(raw)),
        ))
    } else {
        Box::new(BufReader::with_capacity(1 << 16, raw))
    })
}

enum Sink {
    Plain(BufWriter<Box<dyn Write + Send>>),
    Gzip(GzEncoder<BufWriter<Box<dyn Write + Send>>>),
}

/// A backup being written.
pub struct Output {
    sink: Sink,
    /// `(partial, final)` paths; none for standard output.
    rename: Option<(PathBuf, PathBuf)>,
}

impl Output {
    pub fn create(name: &str) -> std::io::Result<Self> {
        let (raw, rename): (Box<dyn Write + Send>, _) = if name == "-" {
            (Box::new(std::io::stdout()), None)
        } else {
            let target = PathBuf::from(name);
            let partial = partial_path(&target);
            (
                Box::new(std::fs::File::create(&partial)?),
                Some((partial, target)),
            )
        };
        let buffered = BufWriter::with_capacity(1 << 16, raw);
        let sink = if is_gzip(name) {
            Sink::Gzip(GzEncoder::new(buffered, flate2::Compression::fast()))
        } else {
            Sink::Plain(buffered)
        };
        Ok(Self { sink, rename })
    }

    pub fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        let out: &mut dyn Write = match &mut self.sink {
            Sink::Plain(w) => w,
            Sink::Gzip(w) => w,
        };
        out.write_all(line)?;
        out.write_all(b"\n")
    }

    /// Flushes everything to disk and gives the file its name.
    pub fn finish(self) -> std::io::Result<()> {
        let mut inner = match self.sink {
            Sink::Plain(w) => w,
            Sink::Gzip(w) => w.finish()?,
        };
        inner.flush()?;
        let raw = inner.into_inner().map_err(|e| e.into_error())?;
        drop(raw);
        if let Some((partial, target)) = self.rename {
            std::fs::File::open(&partial)?.sync_all()?;
            std::fs::rename(partial, target)?;
        }
        Ok(())
    }

    /// Drops what was written (an export that failed).
    pub fn abandon(self) {
        if let Some((partial, _)) = &self.rename {
            let _ = std::fs::remove_file(partial);
        }
    }
}

fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}
