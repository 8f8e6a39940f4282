//! The committed shell completions (`completions/`) and man pages (`man/`)
//! are rendered from the clap definitions; this test renders them again
//! and fails when a file is stale. `PACS2CD_BLESS=1 cargo test generated`
//! rewrites them.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// Every generated file: (path relative to the crate root, contents).
fn render() -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for (shell, name) in
        [(Shell::Bash, "pacs2cd.bash"), (Shell::Zsh, "_pacs2cd"), (Shell::Fish, "pacs2cd.fish")]
    {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "pacs2cd", &mut out);
        files.push((Path::new("completions").join(name), out));
    }
    let command = Cli::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut out).expect("render man page");
    files.push((PathBuf::from("man/pacs2cd.1"), out));
    for sub in command.get_subcommands() {
        // clap takes static names; a test may leak a few bytes.
        let name: &'static str = Box::leak(format!("pacs2cd-{}", sub.get_name()).into_boxed_str());
        let page = sub.clone().name(name).version(env!("CARGO_PKG_VERSION"));
        let mut out = Vec::new();
        clap_mangen::Man::new(page).render(&mut out).expect("render man page");
        files.push((Path::new("man").join(format!("{name}.1")), out));
    }
    files
}

#[test]
fn generated_files_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bless = std::env::var_os("PACS2CD_BLESS").is_some();
    let mut stale = Vec::new();
    for (path, contents) in render() {
        let full = root.join(&path);
        if std::fs::read(&full).ok().as_deref() == Some(&contents[..]) {
            continue;
        }
        if bless {
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(&full, &contents).expect("write generated file");
        } else {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files {stale:?}: run `PACS2CD_BLESS=1 cargo test generated` and commit them"
    );
}
