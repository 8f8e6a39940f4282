//! Finds the DCMTK programs once, as absolute paths: in `tools.dcmtk_dir`
//! when it is set (and only there), else on PATH. A pip-installed
//! pynetdicom also ships `storescu` and `findscu` scripts; resolving to an
//! absolute path and logging it shows which one runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::failure::Failure;

/// The external programs pacs2cd runs, all from the Debian package dcmtk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tool {
    Dcmsend,
    Storescu,
    Echoscu,
    Findscu,
    Movescu,
    Getscu,
    Storescp,
    Dcmmkdir,
}

impl Tool {
    pub const ALL: [Tool; 8] = [
        Tool::Findscu,
        Tool::Movescu,
        Tool::Getscu,
        Tool::Storescp,
        Tool::Dcmsend,
        Tool::Storescu,
        Tool::Echoscu,
        Tool::Dcmmkdir,
    ];

    pub fn program(self) -> &'static str {
        match self {
            Tool::Dcmsend => "dcmsend",
            Tool::Storescu => "storescu",
            Tool::Echoscu => "echoscu",
            Tool::Findscu => "findscu",
            Tool::Movescu => "movescu",
            Tool::Getscu => "getscu",
            Tool::Storescp => "storescp",
            Tool::Dcmmkdir => "dcmmkdir",
        }
    }
}

/// Resolves tools on first use and remembers the answer.
pub struct Toolbox {
    dcmtk_dir: Option<PathBuf>,
    found: Mutex<HashMap<Tool, PathBuf>>,
}

impl Toolbox {
    pub fn new(dcmtk_dir: Option<PathBuf>) -> Toolbox {
        Toolbox { dcmtk_dir, found: Mutex::new(HashMap::new()) }
    }

    pub fn path(&self, tool: Tool) -> Result<PathBuf, Failure> {
        let mut found = self.found.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(path) = found.get(&tool) {
            return Ok(path.clone());
        }
        let path = self.locate(tool)?;
        log::debug!("{} is {}", tool.program(), path.display());
        found.insert(tool, path.clone());
        Ok(path)
    }

    fn locate(&self, tool: Tool) -> Result<PathBuf, Failure> {
        let name = tool.program();
        match &self.dcmtk_dir {
            Some(dir) => {
                let path = dir.join(name);
                if is_executable(&path) {
                    Ok(std::path::absolute(&path).unwrap_or(path))
                } else {
                    Err(Failure::missing_tool(name, &format!("tools.dcmtk_dir {}", dir.display())))
                }
            }
            None => which::which(name).map_err(|_| Failure::missing_tool(name, "PATH")),
        }
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_dcmtk_dir_is_a_configuration_error_naming_the_package() {
        let dir = tempfile::tempdir().expect("tempdir");
        let toolbox = Toolbox::new(Some(dir.path().to_path_buf()));
        let err = toolbox.path(Tool::Dcmsend).expect_err("missing");
        assert_eq!(err.class, crate::failure::Class::Configuration);
        assert!(err.detail.contains("dcmsend") && err.detail.contains("dcmtk"), "{}", err.detail);
    }
}
