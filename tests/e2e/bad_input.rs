//! Bad input, one table: every row is a command line (with its environment and stdin), the
//! exit status it must give and the one `rb: error:` line it must print — and no host of the
//! fleet may change: no new generation or profile, no activation, no new system closure (rows
//! where rb has to build before it can know allow one on the build host, never elsewhere).
//! A host value made to look like an ssh option must never reach an ssh process.

use crate::fleet::{Fleet, HOST_PATH, RbCall};
use crate::state::{error_lines, fleet_state};
use std::fs;
use std::path::Path;
use std::process::Command;

const WS: &str = "ws";
const T: &str = "aquamarine";
/// A host whose SSH sessions have no Nix on their PATH.
const NONIX: &str = "beryl";

/// What the row's `rb: error:` line must say (after `rb: error: `).
#[derive(Clone)]
enum Says {
    Exactly(String),
    /// For texts that end in another program's words (ssh's, the resolver's).
    StartsWith(String),
}

struct Row {
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<String>,
    status: i32,
    says: Says,
    /// Something the failing tool itself says, which must reach stderr too.
    also: Option<&'static str>,
    /// rb finds the problem only after building on this machine: a new system closure here
    /// is allowed (never on another host).
    builds_here: bool,
    /// A failed Nix build: its status is passed on, and Nix versions differ in it (the same
    /// build exits 1 on one Nix and 100 on another). Either is right if rb's line names it.
    nix_build_failure: bool,
}

fn row(args: &[&str], status: i32, says: impl Into<String>) -> Row {
    Row {
        args: args.iter().map(|a| a.to_string()).collect(),
        env: Vec::new(),
        stdin: None,
        status,
        says: Says::Exactly(says.into()),
        also: None,
        builds_here: false,
        nix_build_failure: false,
    }
}

impl Row {
    fn env(mut self, k: &str, v: &str) -> Row {
        self.env.push((k.into(), v.into()));
        self
    }
    fn stdin(mut self, text: &str) -> Row {
        self.stdin = Some(text.into());
        self
    }
    fn nix_build_failure(mut self) -> Row {
        self.nix_build_failure = true;
        self
    }
    fn also(mut self, text: &'static str) -> Row {
        self.also = Some(text);
        self
    }
    fn builds_here(mut self) -> Row {
        self.builds_here = true;
        self
    }
    fn starts_with(mut self) -> Row {
        if let Says::Exactly(s) = self.says {
            self.says = Says::StartsWith(s);
        }
        self
    }
}

/// An `ssh` first on rb's PATH that records every call, then runs the real one.
fn ssh_spy(f: &Fleet) -> (String, std::path::PathBuf) {
    let dir = f.workdir().join("spy");
    fs::create_dir_all(&dir).unwrap();
    let log = f.workdir().join("ssh-calls.log");
    let script = format!(
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\037' \"$a\"; done >> {log}\nprintf '\\n' >> {log}\nexec /usr/bin/ssh \"$@\"\n",
        log = log.display()
    );
    let spy = dir.join("ssh");
    fs::write(&spy, script).unwrap();
    Command::new("chmod").arg("755").arg(&spy).status().unwrap();
    (format!("{}:{HOST_PATH}", dir.display()), log)
}

/// Every ssh call recorded so far, as argument lists.
fn ssh_calls(log: &Path) -> Vec<Vec<String>> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            l.split('\x1f')
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect()
        })
        .collect()
}

/// The fleet's top-level `system` knob: the system every configuration is for.
fn set_system(f: &Fleet, system: &str) {
    let path = f.config_dir().join("knobs.json");
    let mut knobs: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    knobs["system"] = system.into();
    fs::write(&path, serde_json::to_string_pretty(&knobs).unwrap()).unwrap();
    let status = Command::new("git")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args([
            "-c",
            "user.name=rb-test",
            "-c",
            "user.email=rb-test@localhost",
        ])
        .args(["-c", "commit.gpgsign=false", "commit", "-q", "-a", "-m"])
        .arg(format!("system = {system}"))
        .current_dir(f.config_dir())
        .status()
        .unwrap();
    assert!(status.success());
}

fn check(f: &Fleet, spy_path: &str, ssh_log: &Path, r: &Row) {
    let before = fleet_state(f);
    let calls_before = ssh_calls(ssh_log).len();
    let args: Vec<&str> = r.args.iter().map(String::as_str).collect();
    let mut env = r.env.clone();
    env.push(("PATH".into(), spy_path.into()));
    let out = f.rb_with(RbCall {
        args: &args,
        env,
        stdin: r.stdin.clone(),
        ..Default::default()
    });
    let ctx = format!("rb {args:?}");
    let mut says = r.says.clone();
    if r.nix_build_failure && out.status == 100 {
        let Says::Exactly(text) = &says else {
            panic!("{ctx}: a build failure row says an exact line")
        };
        says = Says::Exactly(text.replace("(exit status 1)", "(exit status 100)"));
    } else {
        assert_eq!(out.status, r.status, "{ctx}: exit status: {out:?}");
    }
    assert_eq!(out.stdout, "", "{ctx}: nothing on stdout: {out:?}");
    let errors = error_lines(&out.stderr);
    assert_eq!(errors.len(), 1, "{ctx}: one error line: {out:?}");
    let said = errors[0].strip_prefix("rb: error: ").unwrap();
    match &says {
        Says::Exactly(text) => assert_eq!(said, text, "{ctx}: {out:?}"),
        Says::StartsWith(text) => assert!(said.starts_with(text.as_str()), "{ctx}: {out:?}"),
    }
    if let Some(text) = r.also {
        assert!(
            out.stderr.contains(text),
            "{ctx}: {text:?} missing: {out:?}"
        );
    }
    let calls = ssh_calls(ssh_log);
    if r.status == 2 {
        // Usage errors: the error line comes first, then the hint, and nothing else runs.
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{ctx}: {out:?}");
        assert_eq!(lines[0], errors[0], "{ctx}: {out:?}");
        assert!(lines[1].starts_with("Usage: rb "), "{ctx}: {out:?}");
        assert_eq!(calls.len(), calls_before, "{ctx}: ssh ran: {calls:?}");
    }
    for call in &calls[calls_before..] {
        assert!(
            !call
                .iter()
                .any(|a| a.to_lowercase().contains("proxycommand")),
            "{ctx}: ssh got {call:?}"
        );
    }
    let after = fleet_state(f);
    for (host, was) in &before {
        let now = &after[host];
        if r.builds_here && host == WS {
            assert_eq!(
                (&now.profiles, now.activations, &now.current_system),
                (&was.profiles, was.activations, &was.current_system),
                "{ctx}: {host} changed"
            );
            assert!(now.systems.is_superset(&was.systems), "{ctx}: {host}");
        } else {
            assert_eq!(now, was, "{ctx}: {host} changed");
        }
    }
}

#[test]
fn bad_input_changes_nothing_and_says_one_thing() {
    let f = Fleet::up(&[WS, T, &format!("{NONIX}:nonix")]);
    let (spy_path, ssh_log) = ssh_spy(&f);
    let cfg = f.config_dir().display().to_string();
    let flake_t = f.flake(T);
    let flake_nonix = f.flake(NONIX);
    let marker = f.workdir().join("pwned");
    let proxy_abs = format!("-oProxyCommand=touch {}", marker.display());
    // ssh runs a ProxyCommand with the user's shell, in rb's directory (the work directory).
    let proxy = "-oProxyCommand=touch${IFS}pwned";
    let target = |v: &str| format!("--target-host={v}");
    let s = |v: &str| v.to_string();
    let two_hashes = format!("{cfg}#a#b");
    let quote = format!("{cfg}#a\"b");
    let unknown = format!("{cfg}#nope");
    let hint_flake = "--flake needs a flake reference, e.g. '.#my-host' or '/etc/nixos'";
    let not_with_edit = "--file and --attr are not supported with 'edit'";
    let flake_and_file = "--flake cannot be used with --file or --attr";
    let store_and_source = "--store-path cannot be used with --flake, --file, or --attr";
    let plain_name = |v: &str| {
        format!("--profile-name '{v}' must be a plain name, without '/' and not '.' or '..'")
    };
    let dash = |opt: &str, v: &str| {
        format!("{opt} '{v}' starts with '-', which ssh would read as an option")
    };
    let no_nix = format!("nix-store and nix-env not found on {NONIX}'s PATH");
    // What to do about it, on a line of its own.
    const NO_NIX_HINT: &str =
        "\nhint: rb needs Nix's commands in the PATH of non-interactive SSH sessions there\n";
    let missing = |v: &str| format!("a value is required for '{v}' but none was supplied");

    let rows = vec![
        // Malformed flake references.
        row(
            &["switch", "--flake", &two_hashes],
            2,
            format!("flake reference '{two_hashes}' has more than one '#'; write FLAKE#NAME"),
        ),
        row(
            &["switch", "--flake", &quote],
            2,
            format!("configuration name 'a\"b' in '{quote}' contains '\"', '\\' or '${{'"),
        ),
        row(&["switch", "--flake", ""], 2, hint_flake),
        row(&["switch", "--flake="], 2, hint_flake),
        row(
            &["switch", "--flake", "#aquamarine"],
            2,
            "flake reference '#aquamarine' names no flake before '#'; write e.g. '.#aquamarine'",
        ),
        row(
            &["switch", "--flake=-L#aquamarine"],
            2,
            "flake reference '-L#aquamarine' starts with '-', which Nix would read as an \
             option; write e.g. './-L#aquamarine'",
        ),
        // An attribute the flake does not have: Nix's status and words.
        row(
            &["switch", "--flake", &unknown, "--target-host", T],
            1,
            "building the system configuration failed on local (exit status 1)",
        )
        .also("does not provide attribute"),
        // Missing values.
        row(
            &["switch", "--flake", &flake_t, "--target-host"],
            2,
            missing("--target-host <HOST>"),
        ),
        row(&["switch", "--build-host"], 2, missing("--build-host <HOST>")),
        row(&["switch", "-p"], 2, missing("--profile-name <NAME>")),
        row(&["switch", "-c"], 2, missing("--specialisation <NAME>")),
        row(&["switch", "-f"], 2, missing("--file <FILE>")),
        row(&["switch", "-A"], 2, missing("--attr <ATTR>")),
        row(&["switch", "--store-path"], 2, missing("--store-path <PATH>")),
        row(
            &["switch", "--option", "sandbox"],
            2,
            "2 values required for '--option <NAME> <VALUE>' but 1 was provided",
        ),
        // Conflicts.
        row(&["edit", "-f", "x.nix"], 2, not_with_edit),
        row(&["edit", "-A", "x"], 2, not_with_edit),
        row(
            &["repl", "--target-host", T],
            2,
            "--target-host/--build-host is not supported with 'repl'",
        ),
        row(
            &["edit", "--build-host", T],
            2,
            "--target-host/--build-host is not supported with 'edit'",
        ),
        row(
            &["switch", "--flake", &cfg, "-f", "x.nix"],
            2,
            flake_and_file,
        ),
        row(&["switch", "--flake", &cfg, "-A", T], 2, flake_and_file),
        row(
            &["switch", "--sudo", "--run0"],
            2,
            "--run0 and --sudo are mutually exclusive",
        ),
        row(
            &["switch", "--store-path", "/nix/store/x", "--rollback"],
            2,
            "--store-path and --rollback are mutually exclusive",
        ),
        row(
            &["switch", "--store-path", "/nix/store/x", "--flake", &cfg],
            2,
            store_and_source,
        ),
        row(
            &["switch", "--store-path", "/nix/store/x", "-f", "x.nix"],
            2,
            store_and_source,
        ),
        row(
            &["build", "--store-path", "/nix/store/x"],
            2,
            "--store-path cannot be used with 'build'",
        ),
        row(
            &["boot", "--flake", &flake_t, "-c", "web"],
            2,
            "'--specialisation' can only be used with 'switch' and 'test'",
        ),
        // Unknown action and option.
        row(&["frobnicate"], 2, "invalid value 'frobnicate' for '[ACTION]'"),
        row(
            &["switch", "--frobnicate"],
            2,
            "unexpected argument '--frobnicate' found",
        ),
        // Profile names that would leave the profiles directory.
        row(&["switch", "-p", "a/b"], 2, plain_name("a/b")),
        row(&["switch", "-p", ".."], 2, plain_name("..")),
        row(&["switch", "-p", "../system"], 2, plain_name("../system")),
        // Hosts that ssh would misread.
        row(
            &["switch", "--flake", &flake_t, "--target-host", "root@aqua marine"],
            2,
            "--target-host 'root@aqua marine' contains white space or a control character",
        ),
        row(
            &["switch", "--flake", &flake_t, &target(&proxy_abs)],
            2,
            format!("--target-host '{proxy_abs}' contains white space or a control character"),
        ),
        row(
            &["switch", "--flake", &flake_t, &target(proxy)],
            2,
            dash("--target-host", proxy),
        ),
        row(
            &["switch", "--flake", &flake_t, &format!("--build-host=[{proxy}]")],
            2,
            dash("--build-host", &format!("[{proxy}]")),
        ),
        row(
            &["switch", "--flake", &flake_t, &target(&format!("root@{proxy}"))],
            2,
            dash("--target-host", &format!("root@{proxy}")),
        ),
        row(
            &["switch", "--flake", &flake_t, &target(&format!("ssh://{proxy}"))],
            2,
            dash("--target-host", &format!("ssh://{proxy}")),
        ),
        row(
            &["switch", "--flake", &flake_t, "--target-host", proxy],
            2,
            "unexpected argument '-o' found",
        ),
        // Found on the hosts, before anything changes there.
        row(
            &["switch", "--flake", &flake_t, "--target-host", T, "-c", "nope"],
            1,
            "specialisation not found: nope",
        )
        .builds_here(),
        row(
            &["switch", "--flake", &flake_t, "--target-host", &format!("root@{T}")],
            255,
            format!("cannot connect to root@{T}: ssh: connect to host 127.0.0.1 port 1: Connection refused"),
        )
        .env("NIX_SSHOPTS", "-p 1"),
        row(
            &["switch", "--flake", &flake_t, "--target-host", &format!("ghost@{T}")],
            255,
            format!("cannot connect to ghost@{T}: "),
        )
        .starts_with()
        .also("Permission denied"),
        row(
            &["switch", "--flake", &flake_t, "--target-host", &format!("deploypw@{T}"), "-S"],
            1,
            format!("sudo on deploypw@{T} refused: the password was not accepted"),
        )
        // Tried by the connection's probe while the build runs here (remote.rs shows that
        // it stops a long one).
        .builds_here()
        .stdin("wrong\n"),
        row(
            &["switch", "--flake", &flake_nonix, "--target-host", NONIX],
            127,
            s(&no_nix),
        )
        .builds_here()
        .also(NO_NIX_HINT),
        row(&["switch", "--rollback", "--target-host", NONIX], 127, s(&no_nix)).also(NO_NIX_HINT),
        row(
            &["build", "--flake", &flake_nonix, "--build-host", NONIX],
            127,
            format!("nix-store not found on {NONIX}'s PATH"),
        )
        .also(NO_NIX_HINT),
    ];
    for r in &rows {
        check(&f, &spy_path, &ssh_log, r);
    }
    assert!(!marker.exists(), "a ProxyCommand ran");
    assert!(!f.workdir().join("pwned").exists(), "a ProxyCommand ran");

    // Configurations for another system: no host of the fleet can build them.
    set_system(&f, "aarch64-linux");
    for r in [
        row(
            &["switch", "--flake", &flake_t, "--target-host", T],
            1,
            "building the system configuration failed on local (exit status 1)",
        ),
        row(
            &[
                "switch",
                "--flake",
                &flake_t,
                "--build-host",
                T,
                "--target-host",
                T,
            ],
            1,
            format!("building the system configuration failed on {T} (exit status 1)"),
        ),
    ] {
        check(
            &f,
            &spy_path,
            &ssh_log,
            // Nix names the system it would need (its wording differs between versions).
            &r.also("'aarch64-linux'").nix_build_failure(),
        );
    }
    // The spy saw the rows that connect (it would have seen an injected option).
    assert!(!ssh_calls(&ssh_log).is_empty());
}
