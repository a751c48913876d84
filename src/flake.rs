//! Flake references as `--flake` takes them: `FLAKE#NAME`.

use serde::Serialize;

/// A flake and the NixOS configuration in it, `nixosConfigurations."<name>"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlakeRef {
    pub flake: String,
    pub name: String,
}

/// `--flake` split at its `#`; the name is empty when the user gave none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialFlakeRef {
    pub flake: String,
    pub name: Option<String>,
}

/// Splits a `--flake` value. A value with two `#`, an empty flake part, a flake part Nix would
/// take for an option, or a name that could not be written inside a Nix string is refused: Nix
/// would otherwise misread it silently.
pub fn parse(value: &str) -> Result<PartialFlakeRef, String> {
    if value.is_empty() {
        return Err("--flake needs a flake reference, e.g. '.#my-host' or '/etc/nixos'".into());
    }
    let (flake, name) = match value.split_once('#') {
        None => (value, None),
        Some((flake, name)) => {
            if name.contains('#') {
                return Err(format!(
                    "flake reference '{value}' has more than one '#'; write FLAKE#NAME"
                ));
            }
            (flake, Some(name))
        }
    };
    if flake.is_empty() {
        return Err(format!(
            "flake reference '{value}' names no flake before '#'; write e.g. '.{value}'"
        ));
    }
    if flake.starts_with('-') {
        return Err(format!(
            "flake reference '{value}' starts with '-', which Nix would read as an option; \
             write e.g. './{value}'"
        ));
    }
    let name = match name {
        None | Some("") => None,
        Some(name) => {
            check_name(name)
                .map_err(|why| format!("configuration name '{name}' in '{value}' {why}"))?;
            Some(name.to_string())
        }
    };
    Ok(PartialFlakeRef {
        flake: flake.to_string(),
        name,
    })
}

/// A configuration name is written into `nixosConfigurations."<name>"`; these characters
/// would end or change that string.
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.contains('"') || name.contains('\\') || name.contains("${") {
        return Err("contains '\"', '\\' or '${'");
    }
    if name.chars().any(char::is_control) {
        return Err("contains a control character");
    }
    Ok(())
}

impl PartialFlakeRef {
    /// Completes the reference with the default name (the host name), `default` when empty.
    pub fn complete(self, hostname: &str) -> Result<FlakeRef, String> {
        let name = match self.name {
            Some(name) => name,
            None if hostname.trim().is_empty() => "default".to_string(),
            None => {
                let hostname = hostname.trim();
                check_name(hostname).map_err(|why| format!("host name '{hostname}' {why}"))?;
                hostname.to_string()
            }
        };
        Ok(FlakeRef {
            flake: self.flake,
            name,
        })
    }
}

impl FlakeRef {
    /// The installable for an attribute of the configuration, e.g.
    /// `.#nixosConfigurations."host".config.system.build.toplevel`.
    pub fn installable(&self, attr: &str) -> String {
        format!(
            "{}#nixosConfigurations.\"{}\".{}",
            self.flake, self.name, attr
        )
    }

    /// The configuration itself, `FLAKE#nixosConfigurations."<name>"`.
    pub fn configuration(&self) -> String {
        format!("{}#nixosConfigurations.\"{}\"", self.flake, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(value: &str) -> (String, Option<String>) {
        let r = parse(value).unwrap();
        (r.flake, r.name)
    }

    #[test]
    fn splits_at_hash() {
        assert_eq!(ok(".#my-nixos"), (".".into(), Some("my-nixos".into())));
        assert_eq!(ok("/etc/nixos"), ("/etc/nixos".into(), None));
        assert_eq!(ok("/etc/nixos#"), ("/etc/nixos".into(), None));
        assert_eq!(
            ok("github:me/cfg?dir=x#web.1"),
            ("github:me/cfg?dir=x".into(), Some("web.1".into()))
        );
        assert_eq!(ok("path:/a b#h"), ("path:/a b".into(), Some("h".into())));
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "", "#x", "a#b#c", ".#a\"b", ".#a\\b", ".#a${b}", ".#a\nb", "-L#x", "--impure",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn name_defaults_to_hostname_then_default() {
        let r = parse(".").unwrap();
        assert_eq!(
            r.clone().complete("aquamarine\n").unwrap().name,
            "aquamarine"
        );
        assert_eq!(r.complete("").unwrap().name, "default");
    }

    #[test]
    fn installable_quotes_name() {
        let r = parse(".#a.b").unwrap().complete("x").unwrap();
        assert_eq!(
            r.installable("config.system.build.toplevel"),
            ".#nixosConfigurations.\"a.b\".config.system.build.toplevel"
        );
    }
}
