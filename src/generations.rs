//! `list-generations`: the script that lists a profile's generations on a host, the parser of
//! what it prints, and the table/JSON rendering.
//!
//! The listing is one process on the host (one SSH round trip for `--target-host`), needs no
//! root (it only reads the profile's links and runs each generation's `nixos-version`), and
//! prints one `key value` line per fact, a `generation N` line starting each generation.

use crate::error::{Error, Result};
use serde::Serialize;

/// Lists the generations of the profile given as `$1`.
///
/// The date is the modification time of the generation link itself (`stat` without `-L`):
/// `nix-env` creates `<profile>-N-link` when it makes generation N and nothing changes a
/// symlink afterwards. nixos-rebuild-ng reads the ctime of the link's *target* instead, which
/// is the time of a later `nix store optimise` (hard-linking changes the ctime) or of the
/// copy into this store, not the build time (nixpkgs#560972); the birth time the bash tool
/// used is missing on some file systems.
pub fn list_script() -> String {
    format!(
        "{LINK_FUNCTION}{}",
        include_str!("scripts/list-generations.sh")
    )
}

/// The shell function `rb_generation_of LINK` (scripts that go back to a generation).
pub const LINK_FUNCTION: &str = include_str!("scripts/generation-link.sh");

/// The generation number N of a profile's link `<profile>-N-link` (a path or its name).
pub fn link_number(link: &str) -> Option<u64> {
    link.strip_suffix("-link")?.rsplit('-').next()?.parse().ok()
}

/// The link of generation `n` of `profile`.
pub fn link(profile: &str, n: u64) -> String {
    format!("{profile}-{n}-link")
}

/// One generation, with nixos-rebuild's JSON keys in its order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Generation {
    pub generation: u64,
    /// ISO 8601, UTC: `2026-11-25T17:23:18Z`.
    pub date: String,
    pub nixos_version: String,
    pub kernel_version: String,
    pub configuration_revision: String,
    pub specialisations: Vec<String>,
    pub current: bool,
}

const UNKNOWN: &str = "Unknown";

/// Parses [`list_script`]'s output; newest generation first.
pub fn parse(text: &str) -> Result<Vec<Generation>> {
    let bad = |line: &str| {
        Error::Output(format!(
            "unexpected line in the generations listing: {line:?}"
        ))
    };
    let mut gens: Vec<Generation> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        let value = value.trim();
        if key == "generation" {
            gens.push(Generation {
                generation: value.parse().map_err(|_| bad(line))?,
                date: UNKNOWN.into(),
                nixos_version: UNKNOWN.into(),
                kernel_version: UNKNOWN.into(),
                configuration_revision: UNKNOWN.into(),
                specialisations: Vec::new(),
                current: false,
            });
            continue;
        }
        let g = gens.last_mut().ok_or_else(|| bad(line))?;
        match key {
            "date" if !value.is_empty() => g.date = iso8601(value.parse().map_err(|_| bad(line))?),
            "current" => g.current = true,
            "nixos-version" if !value.is_empty() => g.nixos_version = value.into(),
            "kernel" if !value.is_empty() => g.kernel_version = value.into(),
            "revision" if !value.is_empty() => g.configuration_revision = value.into(),
            "specialisation" => g.specialisations.push(value.into()),
            "date" | "nixos-version" | "kernel" | "revision" => {}
            _ => return Err(bad(line)),
        }
    }
    gens.sort_by_key(|g| std::cmp::Reverse(g.generation));
    Ok(gens)
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso8601(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `--json`: an array, 2-space indented, as nixos-rebuild prints it.
pub fn json(gens: &[Generation]) -> String {
    serde_json::to_string_pretty(gens).unwrap_or_else(|_| "[]".into())
}

/// nixos-rebuild-ng's table (its columns, two spaces between them, no trailing blanks), with
/// readable cells: `yes` for the current generation, specialisations separated by commas.
pub fn table(gens: &[Generation]) -> String {
    let header = [
        "Generation",
        "Build-date",
        "NixOS version",
        "Kernel",
        "Configuration Revision",
        "Specialisation",
        "Current",
    ]
    .map(String::from)
    .to_vec();
    let mut rows = vec![header];
    for g in gens {
        rows.push(vec![
            g.generation.to_string(),
            g.date.clone(),
            g.nixos_version.clone(),
            g.kernel_version.clone(),
            g.configuration_revision.clone(),
            g.specialisations.join(", "),
            if g.current { "yes" } else { "" }.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// rb and the scripts read a link's number alike.
    #[test]
    fn generation_links_give_their_number() {
        let links = [
            "/nix/var/nix/profiles/system-12-link",
            "a-b-3-link",
            "system",
        ];
        assert_eq!(links.map(link_number), [Some(12), Some(3), None]);
        assert_eq!(link("/p/system", 4), "/p/system-4-link");
        let script = format!("{LINK_FUNCTION}\nfor l; do rb_generation_of \"$l\"; done");
        let out = std::process::Command::new("dash")
            .args(["-c", &script, "sh"])
            .args(&links[..2])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "12\n3\n");
    }

    const LISTING: &str = "generation 1\ndate 0\nnixos-version 26.05.1\nkernel 6.1.0-rb\n\
        revision rev-1\nspecialisation web\n\
        generation 2\ndate 1795630122\ncurrent yes\nnixos-version 26.05.2\n\
        specialisation a\nspecialisation b\n";

    #[test]
    fn parses_newest_first_with_unknowns() {
        let g = parse(LISTING).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(
            g[0],
            Generation {
                generation: 2,
                date: "2026-11-25T18:08:42Z".into(),
                nixos_version: "26.05.2".into(),
                kernel_version: "Unknown".into(),
                configuration_revision: "Unknown".into(),
                specialisations: vec!["a".into(), "b".into()],
                current: true,
            }
        );
        assert_eq!(g[1].date, "1970-01-01T00:00:00Z");
        assert!(!g[1].current);
        assert!(parse("date 5\n").is_err());
        assert!(parse("generation x\n").is_err());
        assert_eq!(parse("").unwrap(), vec![]);
    }

    #[test]
    fn dates_are_iso8601_utc() {
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_709_210_096), "2024-02-29T12:34:56Z");
        assert_eq!(iso8601(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn json_has_ngs_keys_in_order() {
        let j = json(&parse(LISTING).unwrap());
        let keys: Vec<&str> = j
            .lines()
            .filter(|l| l.contains("\":"))
            .filter_map(|l| l.trim().strip_prefix('"')?.split('"').next())
            .take(7)
            .collect();
        assert_eq!(
            keys,
            [
                "generation",
                "date",
                "nixosVersion",
                "kernelVersion",
                "configurationRevision",
                "specialisations",
                "current"
            ]
        );
        assert!(j.starts_with("[\n  {\n    \"generation\": 2,"), "{j}");
        assert_eq!(json(&[]), "[]");
    }

    #[test]
    fn table_is_aligned_and_readable() {
        let t = table(&parse(LISTING).unwrap());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines,
            [
                "Generation  Build-date            NixOS version  Kernel    Configuration Revision  Specialisation  Current",
                "2           2026-11-25T18:08:42Z  26.05.2        Unknown   Unknown                 a, b            yes",
                "1           1970-01-01T00:00:00Z  26.05.1        6.1.0-rb  rev-1                   web",
            ]
        );
    }
}
