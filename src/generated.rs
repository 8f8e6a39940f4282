//! The committed shell completions (`completions/`) and man pages (`man/`)
//! are rendered from the clap definitions; this test renders them again
//! and fails when a file is stale. `PACS2CD_BLESS=1 cargo test generated`
//! rewrites them.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

mod pages;

/// Every generated file: (path relative to the crate root, contents).
fn render() -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for (shell, name) in
        [(Shell::Bash, "pacs2cd.bash"), (Shell::Zsh, "_pacs2cd"), (Shell::Fish, "pacs2cd.fish")]
    {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "pacs2cd", &mut out);
        if shell == Shell::Bash {
            out = bash_relay_completes_folders(&String::from_utf8_lossy(&out)).into_bytes();
        }
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

/// clap_complete's bash script offers the options for the first word after
/// a subcommand and nothing for a positional; `relay`'s is a folder, so
/// there it offers options only after a `-`, and folders otherwise.
fn bash_relay_completes_folders(script: &str) -> String {
    let start = script.find("        pacs2cd__subcmd__relay)").expect("the relay block");
    let end = start + script[start..].find("\n            esac").expect("the relay block's end");
    let block = script[start..end]
        .replace("if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then", "if [[ ${cur} == -* ]] ; then")
        .replace(
            "                *)\n                    COMPREPLY=()\n",
            "                *)\n                    COMPREPLY=()\n                    compopt -o plusdirs 2>/dev/null\n                    return 0\n",
        );
    assert_ne!(block, script[start..end], "clap_complete's relay block changed: adapt the rewrite");
    format!("{}{block}{}", &script[..start], &script[end..])
}

/// A man page: clap_mangen's name, description and options, with a
/// synopsis that names every option's argument, the subcommands without
/// clap's `help` (it has no page), the exit codes as EXIT STATUS, and the
/// hand-written FILES, ENVIRONMENT, EXAMPLES and SEE ALSO of `pages`.
fn man_page(command: clap::Command) -> Vec<u8> {
    let exit = command.get_after_help().map(|text| text.to_string());
    let man = clap_mangen::Man::new(command.clone().after_help(None::<&str>));
    let mut out = Vec::new();
    man.render_title(&mut out).expect("render");
    man.render_name_section(&mut out).expect("render");
    out.extend_from_slice(format!(".SH SYNOPSIS\n{}\n", synopsis(&command)).as_bytes());
    man.render_description_section(&mut out).expect("render");
    man.render_options_section(&mut out).expect("render");
    let subcommands: Vec<_> = command.get_subcommands().filter(|sub| sub.get_name() != "help").collect();
    if !subcommands.is_empty() {
        out.extend_from_slice(b".SH COMMANDS\n");
        for sub in subcommands {
            let about = sub.get_about().map(|about| about.to_string()).unwrap_or_default();
            out.extend_from_slice(
                format!(".TP\n\\fBpacs2cd\\-{}\\fR(1)\n{}\n", sub.get_name(), roff(&about)).as_bytes(),
            );
        }
    }
    let page = command.get_name().strip_prefix("pacs2cd-").unwrap_or("");
    out.extend_from_slice(b".SH \"EXIT STATUS\"\n");
    match exit {
        Some(exit) => {
            for line in exit.lines().skip(1) {
                let (code, meaning) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
                out.extend_from_slice(format!(".TP\n\\fB{code}\\fR\n{}\n", roff(meaning.trim())).as_bytes());
            }
        }
        None => out.extend_from_slice(pages::exit_status(page).as_bytes()),
    }
    out.extend_from_slice(pages::sections(page).as_bytes());
    man.render_version_section(&mut out).expect("render");
    out
}

/// Text as roff: hyphens that are minus signs, and no line that starts
/// with a control character.
fn roff(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    match text.chars().next() {
        Some('.' | '\'') => format!("\\&{text}"),
        _ => text,
    }
}

/// `pacs2cd print [--to AE@HOST:PORT] [--dry-run] ... ACC...`: every
/// option with its argument, as a reader types it (clap_mangen shows
/// `[--config]` without one).
fn synopsis(command: &clap::Command) -> String {
    let name = command.get_name().replacen('-', " ", 1);
    let mut words = vec![format!("\\fB{}\\fR", roff(&name))];
    let mut positionals = Vec::new();
    for arg in command.get_arguments() {
        if arg.is_hide_set() || matches!(arg.get_id().as_str(), "help" | "version") {
            continue;
        }
        let value = arg.get_value_names().and_then(|names| names.first()).map(|name| name.to_string());
        if arg.is_positional() {
            let value = value.unwrap_or_else(|| arg.get_id().to_string());
            let many = arg.get_num_args().is_some_and(|range| range.max_values() > 1);
            positionals.push(format!("\\fI{}\\fR{}", roff(&value), if many { "..." } else { "" }));
            continue;
        }
        let flag = match (arg.get_short(), arg.get_long()) {
            (Some(short), Some(long)) => format!("\\fB\\-{short}\\fR|\\fB\\-\\-{}\\fR", roff(long)),
            (None, Some(long)) => format!("\\fB\\-\\-{}\\fR", roff(long)),
            (Some(short), None) => format!("\\fB\\-{short}\\fR"),
            (None, None) => continue,
        };
        let takes = arg.get_action().takes_values();
        let optional = arg.get_num_args().is_some_and(|range| range.min_values() == 0);
        let word = match (takes, value) {
            (true, Some(value)) if optional => format!("[{flag}[=\\fI{}\\fR]]", roff(&value)),
            (true, Some(value)) => format!("[{flag} \\fI{}\\fR]", roff(&value)),
            _ if matches!(arg.get_action(), clap::ArgAction::Count) => format!("[{flag}]..."),
            _ => format!("[{flag}]"),
        };
        words.push(word);
    }
    words.extend(positionals);
    if command.has_subcommands() {
        words.push("\\fICOMMAND\\fR".to_string());
    }
    words.join(" ")
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

/// The man pages a reader opens: every SEE ALSO resolves to a page that is
/// generated, no page for clap's `help`, synopses that name arguments, and
/// the sections an admin looks for.
#[test]
fn man_pages_are_worth_opening() {
    let files = render();
    let pages: Vec<String> = files
        .iter()
        .filter_map(|(path, _)| path.strip_prefix("man").ok())
        .filter_map(|name| name.to_str()?.strip_suffix(".1").map(str::to_string))
        .collect();
    assert!(!pages.iter().any(|page| page.contains("help")), "{pages:?}");
    for (path, contents) in files.iter().filter(|(path, _)| path.starts_with("man")) {
        let text = String::from_utf8_lossy(contents);
        assert!(!text.contains("pacs2cd\\-help"), "{}", path.display());
        for section in ["SYNOPSIS", "OPTIONS", "EXIT STATUS", "FILES", "ENVIRONMENT", "EXAMPLES", "SEE ALSO"]
        {
            let heading =
                if section.contains(' ') { format!(".SH \"{section}\"") } else { format!(".SH {section}") };
            assert!(text.contains(&heading), "{} has no {section}", path.display());
        }
        let see_also = text.split(".SH \"SEE ALSO\"").nth(1).expect("SEE ALSO");
        let references = pages::references(see_also);
        assert!(references.len() >= 5, "{}: {references:?}", path.display());
        for reference in references {
            assert!(
                pages.contains(&reference),
                "{} refers to {reference}(1), which is not generated",
                path.display()
            );
        }
        // Every option that takes a value shows it in the synopsis.
        assert!(text.contains("[\\fB\\-\\-config\\fR \\fIFILE\\fR]"), "{}", path.display());
    }
    let fetch = files.iter().find(|(path, _)| path.ends_with("pacs2cd-fetch.1")).expect("fetch page");
    let fetch = String::from_utf8_lossy(&fetch.1);
    assert!(fetch.contains("[\\fB\\-\\-iso\\fR[=\\fIFILE\\fR]]"), "{fetch}");
    assert!(
        fetch.contains("[\\fB\\-o\\fR") || fetch.contains("[\\fB\\-\\-output\\fR \\fIDIR\\fR]"),
        "{fetch}"
    );
}

/// Completion as a shell user meets it: bash completes folders after
/// `relay` and `-o`, the options after `relay -`, and nothing for `--to`.
#[test]
fn bash_completes_folders_where_a_folder_goes() {
    let Ok(bash) = which::which("bash") else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "bash is missing");
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    std::fs::create_dir(dir.path().join("study")).expect("folder");
    std::fs::write(dir.path().join("notes.txt"), "x").expect("file");
    let script = render().into_iter().find(|(path, _)| path.ends_with("pacs2cd.bash")).expect("bash").1;
    let script_path = dir.path().join("pacs2cd.bash");
    std::fs::write(&script_path, script).expect("script");
    let complete = |words: &str| -> String {
        let line = format!(
            "source {script}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); \
             COMP_LINE=\"${{COMP_WORDS[*]}}\"; \
             _pacs2cd pacs2cd \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script = script_path.display()
        );
        let out = std::process::Command::new(&bash)
            .args(["-c", &line])
            .current_dir(dir.path())
            .output()
            .expect("bash");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // An empty reply with `plusdirs`: readline lists the folders.
    assert_eq!(complete("pacs2cd relay ''").trim(), "", "no options for relay's folder");
    assert!(complete("pacs2cd relay -").contains("--to"), "options after a dash");
    assert_eq!(complete("pacs2cd relay --to ''").trim(), "", "nothing for --to");
    assert_eq!(complete("pacs2cd fetch -o ''").trim(), "");
    let script = std::fs::read_to_string(&script_path).expect("script");
    let relay = &script[script.find("pacs2cd__subcmd__relay)").expect("relay")..];
    assert!(relay[..relay.find("esac").expect("esac")].contains("plusdirs"), "relay's folder");
}
