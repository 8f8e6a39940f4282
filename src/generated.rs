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
    // Built, so that the global options (--config, -v, --json...) appear
    // on every subcommand's page too.
    let mut command = Cli::command();
    command.build();
    files.push((PathBuf::from("man/pacs2cd.1"), man_page(command.clone())));
    // clap's own `help` subcommand needs no page.
    for sub in command.get_subcommands().filter(|sub| sub.get_name() != "help") {
        // clap takes static names; a test may leak a few bytes.
        let name: &'static str = Box::leak(format!("pacs2cd-{}", sub.get_name()).into_boxed_str());
        // The version names the page; the subcommands take no -V.
        let page = sub.clone().name(name).version(env!("CARGO_PKG_VERSION")).disable_version_flag(true);
        files.push((Path::new("man").join(format!("{name}.1")), man_page(page)));
    }
    files
}

/// A man page: clap_mangen's sections, with the after-help text (the exit
/// codes) as an EXIT STATUS section rather than its "EXTRA".
fn man_page(command: clap::Command) -> Vec<u8> {
    let exit = command.get_after_help().map(|text| text.to_string());
    let man = clap_mangen::Man::new(command.clone().after_help(None::<&str>));
    let mut out = Vec::new();
    man.render_title(&mut out).expect("render");
    man.render_name_section(&mut out).expect("render");
    man.render_synopsis_section(&mut out).expect("render");
    man.render_description_section(&mut out).expect("render");
    man.render_options_section(&mut out).expect("render");
    if command.has_subcommands() {
        man.render_subcommands_section(&mut out).expect("render");
    }
    if let Some(exit) = exit {
        out.extend_from_slice(b".SH \"EXIT STATUS\"\n");
        for line in exit.lines().skip(1) {
            let (code, meaning) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
            out.extend_from_slice(
                format!(".TP\n\\fB{code}\\fR\n{}\n", meaning.trim().replace('-', "\\-")).as_bytes(),
            );
        }
    }
    man.render_version_section(&mut out).expect("render");
    out
}

#[test]
fn generated_files_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bless = std::env::var_os("PACS2CD_BLESS").is_some();
    // Under CI the committed files are checked, never rewritten: a CI
    // that blessed them would pass whatever they hold.
    assert!(
        !(bless && std::env::var("CI").as_deref() == Ok("true")),
        "PACS2CD_BLESS is set under CI=true: the generated files must be checked, not rewritten"
    );
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
