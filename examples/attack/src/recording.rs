//! A file of recorded bottles: each one framed as on a stream (length, then bytes), one
//! after the other.

use std::path::Path;

use pcxses_core::frame::{push_frame, FrameDecoder};
use pcxses_core::MAX_BOTTLE_LEN;

use crate::AttackError;

/// Bottles a recording may hold at most; reading refuses a longer file.
pub const MAX_BOTTLES: usize = 100_000;

/// Writes `bottles` to `path`.
pub fn write(path: &Path, bottles: &[Vec<u8>]) -> std::io::Result<()> {
    let mut out = Vec::new();
    for b in bottles {
        push_frame(b, &mut out);
    }
    std::fs::write(path, out)
}

/// Reads the bottles recorded in `path`.
pub fn read(path: &Path) -> Result<Vec<Vec<u8>>, AttackError> {
    let fail = |reason: String| AttackError::Recording {
        path: path.display().to_string(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let mut decoder = FrameDecoder::new(MAX_BOTTLE_LEN);
    let mut input = &bytes[..];
    let mut bottles = Vec::new();
    while let Some(frame) = decoder
        .decode(&mut input)
        .map_err(|e| fail(e.to_string()))?
    {
        if bottles.len() == MAX_BOTTLES {
            return Err(fail(format!("more than {MAX_BOTTLES} bottles")));
        }
        bottles.push(frame.to_vec());
    }
    // Every byte belongs to a whole frame, or the file was cut short.
    let mut framed = Vec::with_capacity(bytes.len());
    for b in &bottles {
        push_frame(b, &mut framed);
    }
    if framed.len() != bytes.len() {
        return Err(fail("the last bottle is cut short".into()));
    }
    Ok(bottles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_reads_back_as_written_and_a_cut_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("pcxses-recording-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.bin");
        let bottles = vec![vec![1, 2, 3], vec![7; 300], vec![9]];
        write(&path, &bottles).unwrap();
        assert_eq!(read(&path).unwrap(), bottles);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(read(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
