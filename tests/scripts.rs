//! Every shell file of the repository passes shellcheck: the scripts rb runs on hosts
//! (`src/scripts/*.sh`, included at build time) and the fleet's. tests/run installs
//! shellcheck; without it this test fails and says so.

use std::path::{Path, PathBuf};
use std::process::Command;

fn sh_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            sh_files(&path, found);
        } else if name.ends_with(".sh") {
            found.push(path);
        }
    }
}

#[test]
fn every_shell_file_passes_shellcheck() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sh_files(root, &mut files);
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("src/scripts/watchdog.sh")),
        "{files:?}"
    );
    let out = match Command::new("shellcheck").args(&files).output() {
        Ok(out) => out,
        Err(e) => panic!(
            "shellcheck is needed to check the shell files ({e}): install it (apt-get install \
             shellcheck; tests/run does)"
        ),
    };
    assert!(
        out.status.success(),
        "shellcheck found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
