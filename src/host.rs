//! Hosts: where a step runs. Either the machine running rb, or one reached over SSH.

use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Host {
    Local,
    Ssh(SshHost),
}

/// A machine reached over SSH, as the user named it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshHost {
    /// What ssh is given as destination: `user@host`, `host`, `user@fe80::1%eth0`.
    pub dest: String,
    /// The store URI scheme for `nix copy`: `ssh` or `ssh-ng`.
    pub scheme: String,
    /// Whether the user wrote the scheme (`ssh://host`, `ssh-ng://host`): then every copy
    /// uses that protocol. A plain `[user@]host` lets rb choose (README, "Copies").
    pub scheme_given: bool,
    /// The host part alone (for messages and socket names).
    pub hostname: String,
}

impl Host {
    pub fn is_local(&self) -> bool {
        matches!(self, Host::Local)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Local => f.write_str("local"),
            Host::Ssh(h) => f.write_str(&h.dest),
        }
    }
}

impl SshHost {
    /// Parses `--target-host`/`--build-host`: `[user@]host`, `scheme://[user@]host`,
    /// `[user@][v6addr]`, `[user@][v6addr%25iface]`.
    pub fn parse(option: &str, value: &str) -> Result<SshHost, String> {
        let bad = |why: &str| format!("{option} '{}' {why}", value.escape_debug());
        if value.is_empty() {
            return Err(format!("{option} needs a host, e.g. root@my-machine"));
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains white space or a control character"));
        }
        let scheme_given = value.contains("://");
        let (scheme, rest) = match value.split_once("://") {
            Some((scheme @ ("ssh" | "ssh-ng"), rest)) => (scheme, rest),
            Some((scheme, _)) => {
                return Err(bad(&format!(
                    "uses the store scheme '{scheme}://'; rb deploys over ssh:// or ssh-ng://"
                )));
            }
            None => ("ssh", value),
        };
        let (user, host) = match rest.rsplit_once('@') {
            Some((user, host)) => (Some(user), host),
            None => (None, rest),
        };
        if host.contains('/') || host.contains('?') {
            return Err(bad("is not a host name; write [user@]host"));
        }
        // IPv6: ssh wants the bare address; `%25` is the URI spelling of a zone's `%`.
        // The checks below look at what ssh will get, so `[-oX]` cannot become an option.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .replace("%25", "%");
        if user == Some("") || host.is_empty() {
            return Err(bad("has an empty user or host name"));
        }
        if user.is_some_and(|u| u.starts_with('-')) || host.starts_with('-') {
            return Err(bad("starts with '-', which ssh would read as an option"));
        }
        let dest = match user {
            Some(user) => format!("{user}@{host}"),
            None => host.clone(),
        };
        Ok(SshHost {
            dest,
            scheme: scheme.to_string(),
            scheme_given,
            hostname: host,
        })
    }

    /// The store URI `nix copy` takes for this host, e.g. `ssh://root@aquamarine`.
    pub fn store_uri(&self) -> String {
        self.uri_with(&self.scheme)
    }

    /// This host's store over `nix-daemon --stdio` (`ssh-ng://`), whatever the user wrote.
    pub fn streamed_uri(&self) -> String {
        self.uri_with("ssh-ng")
    }

    /// The host as `nix-copy-closure` takes it: `user@addr`, with an IPv6 address in
    /// brackets when `brackets` (see `NixCaps::brackets_ipv6_hosts`).
    pub fn legacy_dest(&self, brackets: bool) -> String {
        if !(brackets && self.hostname.contains(':')) {
            return self.dest.clone();
        }
        match self.dest.rsplit_once('@') {
            Some((user, _)) => format!("{user}@[{}]", self.hostname.replace('%', "%25")),
            None => format!("[{}]", self.hostname.replace('%', "%25")),
        }
    }

    /// The configuration name rb guesses for this host without connecting (README, "How a
    /// run works"): the host part, without a port, cut at its first `.` (`web1.example.com`
    /// is `web1`). None for an IP address, which says nothing of the machine's name. The
    /// probe of the connection checks the guess (`probe::Checks::expect_hostname`).
    pub fn guessed_name(&self) -> Option<String> {
        let host = self.hostname.as_str();
        let bare = host.split_once('%').map_or(host, |(addr, _zone)| addr);
        if bare.parse::<std::net::IpAddr>().is_ok() {
            return None;
        }
        // `host:port`: a name has no colon of its own.
        let name = host.split(':').next().unwrap_or(host);
        if name.parse::<std::net::Ipv4Addr>().is_ok() {
            return None;
        }
        let name = name.split('.').next().unwrap_or(name);
        let plausible = !name.is_empty()
            && !name.starts_with('-')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        plausible.then(|| name.to_string())
    }

    fn uri_with(&self, scheme: &str) -> String {
        if self.hostname.contains(':') {
            // nix parses the authority like a URL, so an IPv6 address needs brackets.
            let (user, host) = match self.dest.rsplit_once('@') {
                Some((u, _)) => (format!("{u}@"), &self.hostname),
                None => (String::new(), &self.hostname),
            };
            format!("{scheme}://{user}[{}]", host.replace('%', "%25"))
        } else {
            format!("{scheme}://{}", self.dest)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &str) -> SshHost {
        SshHost::parse("--target-host", v).unwrap()
    }

    #[test]
    fn parses_the_forms_users_write() {
        assert_eq!(p("root@aquamarine").dest, "root@aquamarine");
        assert_eq!(p("aquamarine").hostname, "aquamarine");
        assert_eq!(p("ssh-ng://deploy@web1").scheme, "ssh-ng");
        assert_eq!(p("ssh-ng://deploy@web1").dest, "deploy@web1");
        assert_eq!(p("root@[fe80::1%25eth0]").dest, "root@fe80::1%eth0");
        assert_eq!(p("[::1]").dest, "::1");
        assert_eq!(p("root@[::1]").store_uri(), "ssh://root@[::1]");
        assert_eq!(p("root@aquamarine").store_uri(), "ssh://root@aquamarine");
        assert_eq!(p("root@[::1]").streamed_uri(), "ssh-ng://root@[::1]");
        assert_eq!(p("root@[::1]").legacy_dest(true), "root@[::1]");
        assert_eq!(p("root@[::1]").legacy_dest(false), "root@::1");
        assert_eq!(p("[::1]").legacy_dest(true), "[::1]");
        assert_eq!(p("root@web1").legacy_dest(true), "root@web1");
        assert!(!p("root@aquamarine").scheme_given && p("ssh://root@aquamarine").scheme_given);
    }

    #[test]
    fn the_name_guessed_without_connecting() {
        let g = |v: &str| p(v).guessed_name();
        assert_eq!(g("aquamarine").as_deref(), Some("aquamarine"));
        assert_eq!(g("root@aquamarine").as_deref(), Some("aquamarine"));
        assert_eq!(g("ssh-ng://deploy@web1").as_deref(), Some("web1"));
        assert_eq!(g("root@web1.example.com").as_deref(), Some("web1"));
        assert_eq!(g("web1.example.com").as_deref(), Some("web1"));
        // A port, as SshHost keeps it in the host part.
        assert_eq!(g("root@web1:2222").as_deref(), Some("web1"));
        assert_eq!(g("web1.example.com:22").as_deref(), Some("web1"));
        // Addresses name no machine.
        for addr in [
            "10.0.0.1",
            "root@192.168.1.20",
            "root@192.168.1.20:22",
            "[::1]",
            "root@[fe80::1%25eth0]",
            "root@[2001:db8::7]",
            "2001:db8::7",
        ] {
            assert_eq!(g(addr), None, "{addr}");
        }
    }

    #[test]
    fn refuses_what_ssh_would_misread() {
        for bad in [
            "",
            "-oProxyCommand=x",
            "root@-x",
            "a b",
            "a\nb",
            "@h",
            "u@",
            "http://h",
            "h/x",
            "[-oProxyCommand=x]",
            "root@[-x]",
            "[]",
            "u@[]",
        ] {
            assert!(SshHost::parse("--target-host", bad).is_err(), "{bad:?}");
        }
    }
}
