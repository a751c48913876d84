//! Alias mode: the rb binary installed or linked as `nixos-rebuild` behaves the same and names
//! itself `nixos-rebuild` in usage errors, warnings, errors and help, with the same exit
//! statuses. Nothing here contacts a host: `--plan` stops before running anything.

use assert_cmd::Command;
use rb::error::exit;
use std::path::{Path, PathBuf};

struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

/// A directory with the built binary linked under `name`.
struct Linked {
    dir: tempfile::TempDir,
    program: PathBuf,
}

fn link(name: &str) -> Linked {
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join(name);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_rb"), &program).unwrap();
    Linked { dir, program }
}

fn run(mut rb: Command, cwd: &Path, args: &[&str]) -> Run {
    let out = rb
        .args(args)
        .current_dir(cwd)
        .env_remove("NIX_SSHOPTS")
        .env_remove("NIX_SUDOOPTS")
        .env_remove("NIXOS_REBUILD_SSH_DEFAULT_OPTS")
        .output()
        .unwrap_or_else(|e| panic!("running rb {args:?}: {e}"));
    Run {
        status: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

impl Linked {
    fn run(&self, args: &[&str]) -> Run {
        run(Command::new(&self.program), self.dir.path(), args)
    }

    /// The same arguments through the binary under its own name.
    fn run_as_rb(&self, args: &[&str]) -> Run {
        run(
            Command::cargo_bin("rb").expect("the rb binary"),
            self.dir.path(),
            args,
        )
    }
}

fn nixos_rebuild() -> Linked {
    link("nixos-rebuild")
}

#[test]
fn usage_errors_name_nixos_rebuild_and_exit_2() {
    let nr = nixos_rebuild();
    let r = nr.run(&["switch", "--bogus"]);
    assert_eq!(r.status, exit::USAGE, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "nixos-rebuild: error: unexpected argument '--bogus' found",
            "Usage: nixos-rebuild [ACTION] [OPTIONS]; try 'nixos-rebuild --help' for more information.",
        ]
    );

    // Found after parsing, by rb's own checks.
    let r = nr.run(&["switch", "--flake", ".", "--file", "x.nix"]);
    assert_eq!(r.status, exit::USAGE, "{}", r.stderr);
    assert_eq!(
        r.stderr.lines().next(),
        Some("nixos-rebuild: error: --flake cannot be used with --file or --attr")
    );

    let r = nr.run(&["reboot"]);
    assert_eq!(r.status, exit::USAGE, "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with("nixos-rebuild: error: invalid value 'reboot'"),
        "{}",
        r.stderr
    );
}

#[test]
fn warnings_name_nixos_rebuild_and_plan_exits_0() {
    let nr = nixos_rebuild();
    let args = ["switch", "--fast", "--plan", "--flake", "/nonexistent#web1"];
    let r = nr.run(&args);
    assert_eq!(r.status, exit::SUCCESS, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        "nixos-rebuild: warning: --fast is deprecated, use --no-reexec instead\n"
    );
    assert!(r.stdout.starts_with("plan for 'switch'"), "{}", r.stdout);

    // Behaves the same: only the name differs.
    let rb = nr.run_as_rb(&args);
    assert_eq!(rb.status, r.status);
    assert_eq!(
        rb.stderr,
        "rb: warning: --fast is deprecated, use --no-reexec instead\n"
    );
    assert_eq!(normalise_run_id(&rb.stdout), normalise_run_id(&r.stdout));
}

/// The plan names a systemd unit after the run; two runs differ there only.
fn normalise_run_id(plan: &str) -> String {
    plan.split_whitespace()
        .map(|w| {
            if w.starts_with("--unit=") {
                "--unit=…"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn help_and_version_name_nixos_rebuild() {
    let nr = nixos_rebuild();
    for args in [&["--help"][..], &["-h"], &[]] {
        let r = nr.run(args);
        assert_eq!(r.status, exit::SUCCESS, "{args:?}: {}", r.stderr);
        assert!(r.stderr.is_empty(), "{args:?}: {}", r.stderr);
        assert!(
            r.stdout
                .lines()
                .any(|l| l == "Usage: nixos-rebuild [OPTIONS] [ACTION]"),
            "{args:?}: {}",
            r.stdout
        );
        assert!(
            r.stdout.contains(
                "  nixos-rebuild switch --flake .#my-nixos --target-host root@aquamarine\n"
            ),
            "{args:?}: the examples use the name: {}",
            r.stdout
        );
        assert!(r.stdout.contains("nixos-rebuild(8)"), "{args:?}");
        // Below the description (which says what the program is), nothing names rb.
        let (_, rest) = r.stdout.split_once("\nUsage: ").unwrap();
        assert!(
            !rest
                .split(|c: char| !c.is_alphanumeric())
                .any(|w| w == "rb"),
            "{args:?}: {rest}"
        );
    }
    let r = nr.run(&["--version"]);
    assert_eq!(r.status, exit::SUCCESS);
    assert_eq!(
        r.stdout,
        format!("nixos-rebuild {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// A failing Nix command: its status is rb's, and rb's message names nixos-rebuild.
#[test]
fn a_failing_build_exits_with_nixs_status_under_the_alias_name() {
    if !on_path("nix") {
        eprintln!("note: nix is not installed; the failing build is not checked");
        return;
    }
    let nr = nixos_rebuild();
    let r = nr.run(&["build", "--flake", "/nonexistent/flake#web1"]);
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(
        r.stderr
            .lines()
            .any(|l| l.starts_with("nixos-rebuild: error: ")),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("rb: "), "{}", r.stderr);
}

/// nixos-rebuild-ng's own name, and a link in a path with other names in it, are the alias too.
#[test]
fn any_name_starting_with_nixos_rebuild_is_the_alias() {
    let ng = link("nixos-rebuild-ng");
    let r = ng.run(&["--bogus"]);
    assert_eq!(r.status, exit::USAGE);
    assert!(
        r.stderr.starts_with("nixos-rebuild: error: "),
        "{}",
        r.stderr
    );

    let other = link("deploy");
    let r = other.run(&["--bogus"]);
    assert_eq!(r.status, exit::USAGE);
    assert!(r.stderr.starts_with("rb: error: "), "{}", r.stderr);
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}
