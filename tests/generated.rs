//! Files generated from the clap definitions in `src/cli.rs` and checked in, so that packagers
//! need no build step for them: the man page `man/rb.8` and the shell completions in
//! `completions/`.
//!
//! The test regenerates each one in memory and fails when the checked-in copy differs; with
//! `RB_REGENERATE=1` it writes them instead. The man page's hand-written sections live in
//! `man/sections/*.roff` and are copied in as they are, except that `@NAME@` in them stands for
//! the exit status constant `rb::error::exit::NAME`. Nothing in the output depends on the date
//! or the machine; the version comes from Cargo.toml.
//!
//! The man page is rendered here rather than with clap_mangen so that the options can be grouped
//! under one OPTIONS section by their help heading, with their aliases, and the actions get a
//! section of their own.
//!
//! Also here: `default.nix`, which installs these files, must at least parse.

use clap::{Arg, ArgAction, Command, ValueHint};
use clap_complete::Shell;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

const REGENERATE: &str = "RB_REGENERATE";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn regenerating() -> bool {
    std::env::var(REGENERATE).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Every generated file: its path in the repository and its content.
fn generated() -> Vec<(&'static str, String)> {
    vec![
        ("man/rb.8", man::page()),
        ("completions/rb.bash", completion(Shell::Bash)),
        ("completions/_rb", completion(Shell::Zsh)),
        ("completions/rb.fish", completion(Shell::Fish)),
    ]
}

fn completion(shell: Shell) -> String {
    let mut cmd = rb::app::command("rb");
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "rb", &mut out);
    let mut script = String::from_utf8(out).expect("clap_complete writes UTF-8");
    // clap_complete completes file names for hosts in bash and bare host names in zsh; hosts
    // are [user@]host, so complete host names, after a user@ too.
    let hosts = cmd
        .get_arguments()
        .filter(|a| a.get_value_hint() == ValueHint::Hostname)
        .filter_map(|a| a.get_long());
    for long in hosts {
        let (old, new) = match shell {
            Shell::Bash => (
                format!("--{long})\n                    COMPREPLY=($(compgen -f \"${{cur}}\"))"),
                format!(
                    "--{long})\n                    \
                     if [[ \"${{cur}}\" == *@* ]]; then \
                     COMPREPLY=($(compgen -A hostname -P \"${{cur%%@*}}@\" -- \"${{cur#*@}}\")); \
                     else COMPREPLY=($(compgen -A hostname -- \"${{cur}}\")); fi"
                ),
            ),
            Shell::Zsh => {
                let line = script
                    .lines()
                    // A repeatable option (`--target-host`) starts with `'*`.
                    .find(|l| {
                        l.starts_with(&format!("'--{long}=["))
                            || l.starts_with(&format!("'*--{long}=["))
                    })
                    .unwrap_or_default();
                (
                    line.to_string(),
                    line.replace(":_hosts'", ":_user_at_host'"),
                )
            }
            _ => continue,
        };
        assert!(
            !old.is_empty() && old != new && script.contains(&old),
            "clap_complete's {shell} script changed around --{long}; update completion()"
        );
        script = script.replace(&old, &new);
    }
    if shell == Shell::Fish {
        // clap_complete's fish script completes no positional arguments: add the actions,
        // offered until one is on the command line.
        let actions = man::actions(&cmd);
        let all: Vec<&str> = actions
            .iter()
            .flat_map(|a| a.get_name_and_aliases())
            .collect();
        for action in &actions {
            let help = action.get_help().map(|h| h.to_string()).unwrap_or_default();
            script.push_str(&format!(
                "complete -c rb -n \"not __fish_seen_subcommand_from {}\" -f -a {} -d '{}'\n",
                all.join(" "),
                action.get_name(),
                help.replace('\\', "\\\\").replace('\'', "\\'")
            ));
        }
    }
    script
}

#[test]
fn checked_in_files_match_the_clap_definitions() {
    let mut problems = Vec::new();
    for (path, content) in generated() {
        let file = repo().join(path);
        if regenerating() {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, &content).unwrap_or_else(|e| panic!("writing {path}: {e}"));
            eprintln!("wrote {path}");
            continue;
        }
        match std::fs::read_to_string(&file) {
            Ok(old) if old == content => {}
            Ok(old) => problems.push(format!(
                "{path} is stale: run `{REGENERATE}=1 cargo test --test generated`\n  {}",
                first_difference(&old, &content)
            )),
            Err(e) => problems.push(format!(
                "{path} is missing ({e}): run `{REGENERATE}=1 cargo test --test generated`"
            )),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Where two texts part, as one line for the failure message.
fn first_difference(old: &str, new: &str) -> String {
    let (mut old_lines, mut new_lines) = (old.lines(), new.lines());
    for n in 1.. {
        match (old_lines.next(), new_lines.next()) {
            (Some(a), Some(b)) if a == b => continue,
            (None, None) => break,
            (a, b) => {
                return format!(
                    "line {n}: checked in {:?}, generated {:?}",
                    a.unwrap_or("<end of file>"),
                    b.unwrap_or("<end of file>")
                );
            }
        }
    }
    "they differ only in line endings".into()
}

#[test]
fn the_man_page_documents_every_action_option_and_exit_status() {
    let page = man::page();
    let cmd = man::built_command();
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        if let Some(long) = arg.get_long() {
            let mention = format!("\\fB\\-\\-{}\\fR", man::escape(long));
            assert!(page.contains(&mention), "--{long} is not in the man page");
        }
    }
    for action in man::actions(&cmd) {
        let mention = format!(".B {}\n", man::escape(action.get_name()));
        assert!(
            page.contains(&mention),
            "{} is not in ACTIONS",
            action.get_name()
        );
    }
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "ACTIONS",
        "OPTIONS",
        "ENVIRONMENT",
        "FILES",
        "EXIT STATUS",
        "EXAMPLES",
        "SEE ALSO",
    ] {
        assert!(
            page.contains(&format!("\n.SH {section}\n")),
            "no {section} section"
        );
    }
    use rb::error::exit;
    for status in [
        exit::SUCCESS,
        exit::FAILURE,
        exit::USAGE,
        exit::SSH,
        exit::INTERNAL,
    ] {
        assert!(
            page.contains(&format!(".TP\n.B {status}\n")),
            "exit {status}"
        );
    }
    assert!(
        !man::has_placeholder(&page),
        "a placeholder was left in the man page"
    );
}

#[test]
fn default_nix_parses() {
    let Some(nix) = nix_instantiate() else {
        return;
    };
    let out = Process::new(&nix)
        .args(["--parse", "default.nix"])
        .current_dir(repo())
        .output()
        .expect("running nix-instantiate");
    assert!(
        out.status.success(),
        "nix-instantiate --parse default.nix failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// default.nix evaluated against a stand-in for nixpkgs that records what it is given: the
/// real nixpkgs is not available here. It checks the files the package takes from the
/// repository exist and what postInstall installs, with and without the alias.
#[test]
fn default_nix_evaluates_against_a_stand_in_for_nixpkgs() {
    let Some(nix) = nix_instantiate() else {
        return;
    };
    for alias in [false, true] {
        let expr = format!(
            r#"
let
  pkgs = {{
    lib = {{
      importTOML = path: builtins.fromTOML (builtins.readFile path);
      fileset = {{
        unions = builtins.map (p: assert builtins.pathExists p; baseNameOf (toString p));
        toSource = {{ root, fileset }}: fileset;
      }};
      optionalString = cond: s: if cond then s else "";
      licenses.mit = "mit";
      platforms.linux = [ "x86_64-linux" ];
    }};
    installShellFiles = "installShellFiles";
    rustPlatform.buildRustPackage = attrs: attrs;
  }};
  p = import ./default.nix {{ inherit pkgs; withNixosRebuildAlias = {alias}; }};
in {{
  inherit (p) pname version src doCheck postInstall nativeBuildInputs;
  lockFile = toString p.cargoLock.lockFile;
  mainProgram = p.meta.mainProgram;
}}"#
        );
        let out = Process::new(&nix)
            .args(["--eval", "--strict", "--json", "--expr", &expr])
            .current_dir(repo())
            .output()
            .expect("running nix-instantiate");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "evaluating default.nix:\n{stderr}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["pname"], "rb");
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(v["doCheck"], false);
        assert_eq!(v["mainProgram"], "rb");
        assert!(v["lockFile"].as_str().unwrap().ends_with("/Cargo.lock"));
        assert_eq!(
            v["nativeBuildInputs"],
            serde_json::json!(["installShellFiles"])
        );
        let src: Vec<&str> = v["src"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        for needed in ["Cargo.toml", "Cargo.lock", "src", "man", "completions"] {
            assert!(
                src.contains(&needed),
                "{needed} is not in the source: {src:?}"
            );
        }
        let post = v["postInstall"].as_str().unwrap();
        for (path, _) in generated() {
            assert!(post.contains(path), "postInstall does not install {path}");
        }
        assert_eq!(
            post.contains("nixos-rebuild"),
            alias,
            "the alias is installed exactly when asked for:\n{post}"
        );
    }
}

fn nix_instantiate() -> Option<PathBuf> {
    let found = which("nix-instantiate");
    if found.is_none() {
        eprintln!("note: nix-instantiate is not installed; default.nix is not checked");
    }
    found
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The man page, as roff for man(7).
mod man {
    use super::*;
    use clap::builder::PossibleValue;
    use std::fmt::Write;

    const SECTIONS: &str = "man/sections";

    /// The command as clap has completed it (help flag added, value counts known).
    pub fn built_command() -> Command {
        let mut cmd = rb::app::command("rb");
        cmd.build();
        cmd
    }

    /// The values of the ACTION positional.
    pub fn actions(cmd: &Command) -> Vec<PossibleValue> {
        let action = cmd.get_positionals().next().expect("the ACTION positional");
        action.get_possible_values()
    }

    pub fn page() -> String {
        let cmd = built_command();
        let name = cmd.get_name().to_string();
        let mut out = String::new();
        let w = &mut out;
        line(
            w,
            ".\\\" Generated from src/cli.rs and man/sections/ by tests/generated.rs.",
        );
        line(
            w,
            ".\\\" Do not edit: run `RB_REGENERATE=1 cargo test --test generated`.",
        );
        line(
            w,
            &format!(
                ".TH {} 8 \"\" \"{} {}\" \"System Manager's Manual\"",
                name.to_uppercase(),
                name,
                env!("CARGO_PKG_VERSION")
            ),
        );
        // Option names and paths read better unbroken than hyphenated.
        line(w, ".nh");

        line(w, ".SH NAME");
        let about = text(cmd.get_about());
        line(
            w,
            &format!("{name} \\- {}", escape(&lowercase_first(&about))),
        );

        line(w, ".SH SYNOPSIS");
        line(
            w,
            &format!("\\fB{name}\\fR [\\fIACTION\\fR] [\\fIOPTION\\fR]..."),
        );

        line(w, ".SH DESCRIPTION");
        // The first paragraph of the long description is the NAME line.
        let long = text(cmd.get_long_about());
        paragraphs(w, long.split("\n\n").skip(1), ".PP");
        include(w, "description.roff");

        line(w, ".SH ACTIONS");
        for value in actions(&cmd) {
            line(w, ".TP");
            line(w, &format!(".B {}", escape(value.get_name())));
            line(w, &escape(&sentence(&text(value.get_help()))));
            let aliases: Vec<&str> = value.get_name_and_aliases().skip(1).collect();
            if !aliases.is_empty() {
                line(w, &format!("Also spelled {}.", bold_list(&aliases)));
            }
        }

        line(w, ".SH OPTIONS");
        let mut headings: Vec<Option<&str>> = Vec::new();
        for arg in options(&cmd) {
            if !headings.contains(&arg.get_help_heading()) {
                headings.push(arg.get_help_heading());
            }
        }
        for heading in headings {
            if let Some(heading) = heading {
                line(w, &format!(".SS {}", escape(heading)));
            }
            for arg in options(&cmd).filter(|a| a.get_help_heading() == heading) {
                option(w, arg);
            }
        }

        for section in [
            "environment.roff",
            "files.roff",
            "exit-status.roff",
            "examples.roff",
            "see-also.roff",
        ] {
            include(w, section);
        }
        out
    }

    fn options(cmd: &Command) -> impl Iterator<Item = &Arg> {
        cmd.get_arguments()
            .filter(|a| !a.is_positional() && !a.is_hide_set())
    }

    fn option(w: &mut String, arg: &Arg) {
        let mut names = Vec::new();
        if let Some(c) = arg.get_short() {
            names.push(format!("\\fB\\-{}\\fR", escape(&c.to_string())));
        }
        for c in arg.get_visible_short_aliases().unwrap_or_default() {
            names.push(format!("\\fB\\-{}\\fR", escape(&c.to_string())));
        }
        if let Some(long) = arg.get_long() {
            names.push(format!("\\fB\\-\\-{}\\fR", escape(long)));
        }
        for long in arg.get_visible_aliases().unwrap_or_default() {
            names.push(format!("\\fB\\-\\-{}\\fR", escape(long)));
        }
        let mut header = names.join(", ");
        let range = arg.get_num_args().expect("the command is built");
        if range.takes_values() {
            let values: Vec<String> = arg
                .get_value_names()
                .map(|names| names.iter().map(|n| n.to_string()).collect())
                .unwrap_or_else(|| vec![arg.get_id().to_string().to_uppercase()]);
            let values: Vec<String> = values
                .iter()
                .map(|v| format!("\\fI{}\\fR", escape(v)))
                .collect();
            let values = values.join(" ");
            if range.min_values() == 0 {
                write!(header, " [{values}]").unwrap();
            } else {
                write!(header, " {values}").unwrap();
            }
        }
        line(w, ".TP");
        line(w, &header);
        let help = text(arg.get_long_help().or(arg.get_help()));
        let mut help: Vec<String> = help.split("\n\n").map(sentence).collect();
        if matches!(arg.get_action(), ArgAction::Append) {
            help.push("May be given more than once.".into());
        }
        if range.takes_values()
            && !arg.is_hide_default_value_set()
            && !arg.get_default_values().is_empty()
        {
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            help.push(format!("Default: {}.", defaults.join(", ")));
        }
        paragraphs(w, help.iter().map(String::as_str), ".IP");
        let values: Vec<PossibleValue> = arg
            .get_possible_values()
            .into_iter()
            .filter(|v| !v.is_hide_set())
            .collect();
        if !values.is_empty() {
            line(w, ".RS");
            for value in values {
                line(w, ".TP");
                line(w, &format!(".B {}", escape(value.get_name())));
                line(w, &escape(&sentence(&text(value.get_help()))));
            }
            line(w, ".RE");
        }
    }

    /// Text paragraphs, `separator` (`.PP`, `.IP`) between them.
    fn paragraphs<'a>(w: &mut String, paras: impl Iterator<Item = &'a str>, separator: &str) {
        for (i, para) in paras.filter(|p| !p.trim().is_empty()).enumerate() {
            if i > 0 || separator == ".PP" {
                line(w, separator);
            }
            for l in para.lines() {
                for sentence in sentences(l.trim()) {
                    line(w, &escape(sentence));
                }
            }
        }
    }

    fn include(w: &mut String, file: &str) {
        let path = repo().join(SECTIONS).join(file);
        let mut text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        use rb::error::exit;
        for (name, value) in [
            ("SUCCESS", exit::SUCCESS),
            ("FAILURE", exit::FAILURE),
            ("USAGE", exit::USAGE),
            ("SSH", exit::SSH),
            ("NOT_FOUND", exit::NOT_FOUND),
            ("ROLLED_BACK", exit::ROLLED_BACK),
            ("UNCONFIRMED", exit::UNCONFIRMED),
            ("DECLINED", exit::DECLINED),
            ("INTERNAL", exit::INTERNAL),
        ] {
            text = text.replace(&format!("@{name}@"), &value.to_string());
        }
        assert!(
            !has_placeholder(&text),
            "{file}: unknown @NAME@ placeholder (the names are those of rb::error::exit)"
        );
        w.push_str(&text);
        if !text.ends_with('\n') {
            w.push('\n');
        }
    }

    /// A line split after each full stop that ends a sentence: roff wants each sentence on
    /// a line of its own, to know where to put the wider space.
    fn sentences(l: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        for (i, _) in l.match_indices(". ") {
            if l[i + 2..].starts_with(|c: char| c.is_ascii_uppercase()) {
                out.push(&l[start..=i]);
                start = i + 2;
            }
        }
        out.push(&l[start..]);
        out
    }

    fn line(w: &mut String, l: &str) {
        w.push_str(l);
        w.push('\n');
    }

    fn text(s: Option<&clap::builder::StyledStr>) -> String {
        s.map(|s| s.to_string()).unwrap_or_default()
    }

    /// clap drops the final period of one-sentence help; the manual puts it back.
    fn sentence(s: &str) -> String {
        let s = s.trim();
        if s.is_empty() || s.ends_with(['.', '!', '?']) {
            s.to_string()
        } else {
            format!("{s}.")
        }
    }

    /// Whether `text` still has an `@NAME@` placeholder.
    pub fn has_placeholder(text: &str) -> bool {
        let parts: Vec<&str> = text.split('@').collect();
        parts.len() > 2
            && parts[1..parts.len() - 1].iter().any(|name| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            })
    }

    fn lowercase_first(s: &str) -> String {
        let s = s.trim().trim_end_matches('.');
        let mut chars = s.chars();
        match chars.next() {
            Some(c) => c.to_lowercase().chain(chars).collect(),
            None => String::new(),
        }
    }

    fn bold_list(words: &[&str]) -> String {
        let words: Vec<String> = words
            .iter()
            .map(|w| format!("\\fB{}\\fR", escape(w)))
            .collect();
        words.join(", ")
    }

    /// Plain text as roff: backslashes and dashes escaped, `code` in bold, and no line that
    /// starts with a control character.
    pub fn escape(s: &str) -> String {
        let mut out = String::new();
        let mut in_code = false;
        for c in s.chars() {
            match c {
                '\\' => out.push_str("\\e"),
                '-' => out.push_str("\\-"),
                '`' => {
                    out.push_str(if in_code { "\\fR" } else { "\\fB" });
                    in_code = !in_code;
                }
                c => out.push(c),
            }
        }
        if out.starts_with(['.', '\'']) {
            out.insert_str(0, "\\&");
        }
        out
    }
}
