//! ISO 9660 disc images with Joliet and Rock Ridge, built from a disc
//! folder by genisoimage, xorriso or mkisofs (`tools.iso_tool`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::IsoTool;
use crate::dicom::runner::{self, Command};
use crate::failure::Failure;

/// A CD-R holds 700 MiB; a single-layer DVD 4.7 GB.
pub const CD_BYTES: u64 = 700 * 1024 * 1024;
pub const DVD_BYTES: u64 = 4_700_000_000;

/// The program found for `tool`, and which one it is.
pub fn find(tool: IsoTool) -> Result<(PathBuf, IsoTool), Failure> {
    let candidates: &[IsoTool] = match tool {
        IsoTool::Auto => &[IsoTool::Genisoimage, IsoTool::Xorriso, IsoTool::Mkisofs],
        IsoTool::Genisoimage => &[IsoTool::Genisoimage],
        IsoTool::Xorriso => &[IsoTool::Xorriso],
        IsoTool::Mkisofs => &[IsoTool::Mkisofs],
    };
    for &candidate in candidates {
        if let Ok(path) = which::which(name(candidate)) {
            return Ok((path, candidate));
        }
    }
    Err(Failure::config(format!(
        "no ISO tool found ({}): install the Debian package genisoimage or xorriso, or set tools.iso_tool",
        candidates.iter().map(|&c| name(c)).collect::<Vec<_>>().join(", ")
    )))
}

pub fn name(tool: IsoTool) -> &'static str {
    match tool {
        IsoTool::Auto | IsoTool::Genisoimage => "genisoimage",
        IsoTool::Xorriso => "xorriso",
        IsoTool::Mkisofs => "mkisofs",
    }
}

/// The mkisofs-style arguments all three understand (xorriso through its
/// `-as mkisofs` emulation).
pub fn args(tool: IsoTool, label: &str, image: &Path, folder: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    if tool == IsoTool::Xorriso {
        args.extend(["-as".into(), "mkisofs".into()]);
    }
    args.extend(
        ["-quiet", "-input-charset", "utf-8", "-J", "-R", "-V", label].into_iter().map(OsString::from),
    );
    args.push("-o".into());
    args.push(image.into());
    args.push(folder.into());
    args
}

/// Builds `image` from `folder` with a tool `find` gave; returns its size.
pub fn build(
    (program, tool): &(PathBuf, IsoTool),
    label: &str,
    folder: &Path,
    image: &Path,
) -> Result<u64, Failure> {
    let tool = *tool;
    let mut command = Command::new(program, Duration::from_secs(3600));
    command.args(args(tool, label, image, folder));
    let output = runner::run(&command, &mut |_| {})?;
    let size = image.metadata().map(|m| m.len()).unwrap_or(0);
    // A disc image of patients' images: the owner and group only.
    let restricted = std::fs::set_permissions(
        image,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o640),
    );
    if output.code != Some(0) || size == 0 || restricted.is_err() {
        let said = output.lines.iter().rev().find(|l| !l.trim().is_empty()).cloned().unwrap_or_default();
        let _ = std::fs::remove_file(image);
        let detail = format!(
            "{} could not build the disc image {}: {}",
            name(tool),
            image.display(),
            said.chars().take(200).collect::<String>()
        );
        // The disk, not the configuration (the image is gone again, so
        // the free space no longer shows it).
        if output.lines.iter().any(|l| l.contains("No space left on device")) {
            return Err(Failure::disk_full(&format!("staging disk full: {detail}"))
                .for_the_web("the server that prepares the discs is out of disk space; nothing was sent"));
        }
        return Err(Failure::config(detail));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xorriso_speaks_mkisofs() {
        let args = args(IsoTool::Xorriso, "L", Path::new("/o.iso"), Path::new("/d"));
        assert_eq!(args[..2], [OsString::from("-as"), OsString::from("mkisofs")]);
        assert!(args.contains(&OsString::from("-J")) && args.contains(&OsString::from("-R")));
    }
}
