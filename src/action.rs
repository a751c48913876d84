//! The actions (`switch`, `boot`, `build`, …) and what each one does: the one place the
//! request's checks (`request.rs`), the planner and the watchdog ask.

use clap::ValueEnum;
use serde::Serialize;

/// The actions of nixos-rebuild-ng, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Build, make it the boot default and activate it now.
    Switch,
    /// Build and make it the boot default, without activating it now.
    Boot,
    /// Build and activate it now, without making it the boot default.
    Test,
    /// Build it and leave a `result` link in the current directory.
    Build,
    /// Show what would be built or fetched, without building.
    #[value(alias = "dry-run")]
    DryBuild,
    /// Build and copy it, then show what activating it would change.
    DryActivate,
    /// Open the configuration in an editor.
    Edit,
    /// Open `nix repl` with the configuration loaded.
    Repl,
    /// Build a QEMU virtual machine running the configuration and print how to start it.
    BuildVm,
    /// Like build-vm, booting through the boot loader.
    BuildVmWithBootloader,
    /// Build a disk image of the configuration (see --image-variant).
    BuildImage,
    /// List the generations of the system profile (as JSON with --json).
    ListGenerations,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Switch => "switch",
            Action::Boot => "boot",
            Action::Test => "test",
            Action::Build => "build",
            Action::DryBuild => "dry-build",
            Action::DryActivate => "dry-activate",
            Action::Edit => "edit",
            Action::Repl => "repl",
            Action::BuildVm => "build-vm",
            Action::BuildVmWithBootloader => "build-vm-with-bootloader",
            Action::BuildImage => "build-image",
            Action::ListGenerations => "list-generations",
        }
    }

    /// Whether it runs switch-to-configuration on the target.
    pub fn activates(self) -> bool {
        self.stc_action().is_some()
    }

    /// switch-to-configuration's action for it, if it activates.
    pub fn stc_action(self) -> Option<&'static str> {
        match self {
            Action::Switch => Some("switch"),
            Action::Boot => Some("boot"),
            Action::Test => Some("test"),
            Action::DryActivate => Some("dry-activate"),
            _ => None,
        }
    }

    /// switch-to-configuration's action for it under magic rollback (`--confirm-timeout`),
    /// until the new configuration is confirmed: `switch` only activates (`test`), and the
    /// boot default changes once it is confirmed ([`Action::boots_when_confirmed`]), so that
    /// a rollback (or a reboot before the confirmation) finds the boot loader as it was. This
    /// is also what the watchdog runs of the previous system to roll back (`rollback/watchdog.rs`).
    pub fn stc_action_until_confirmed(self) -> Option<&'static str> {
        match self {
            Action::Switch => Some("test"),
            other => other.stc_action(),
        }
    }

    /// Whether, under magic rollback, the confirmation makes the new generation the boot
    /// default (`switch-to-configuration boot`): what `switch` does besides `test`. (`boot`
    /// changes nothing else, so it sets the boot default when it runs, and its rollback puts
    /// the previous one back.)
    pub fn boots_when_confirmed(self) -> bool {
        self == Action::Switch
    }

    /// Whether it makes the system a new generation of the profile.
    pub fn sets_profile(self) -> bool {
        matches!(self, Action::Switch | Action::Boot)
    }

    /// Whether it leaves `./result` in the current directory.
    pub fn leaves_result_link(self) -> bool {
        matches!(
            self,
            Action::Build | Action::BuildVm | Action::BuildVmWithBootloader | Action::BuildImage
        )
    }

    /// Whether it builds a system and may do so on another host (`--build-host`).
    pub fn takes_build_host(self) -> bool {
        use Action::*;
        matches!(
            self,
            Switch | Boot | Test | Build | DryBuild | DryActivate | BuildVm | BuildVmWithBootloader
        )
    }

    /// Whether it may act on another host (`--target-host`). nixos-rebuild-ng refuses it with
    /// `list-generations`; rb lists the target's generations (one SSH session, no root needed).
    pub fn takes_target_host(self) -> bool {
        self.takes_build_host() || self == Action::ListGenerations
    }

    /// Whether `--store-path` (a system built elsewhere) makes sense: it activates one.
    pub fn takes_store_path(self) -> bool {
        self.activates()
    }

    /// Whether `--rollback` applies.
    pub fn takes_rollback(self) -> bool {
        matches!(
            self,
            Action::Switch | Action::Boot | Action::Test | Action::Build
        )
    }

    /// Whether `--generation N` applies: it makes a generation current, or runs it.
    pub fn takes_generation(self) -> bool {
        matches!(self, Action::Switch | Action::Boot | Action::Test)
    }

    /// Whether `--specialisation` applies.
    pub fn takes_specialisation(self) -> bool {
        matches!(self, Action::Switch | Action::Test)
    }

    /// Whether magic rollback (`--confirm-timeout`) applies: it changes what runs or boots.
    pub fn takes_confirm_timeout(self) -> bool {
        matches!(self, Action::Switch | Action::Boot | Action::Test)
    }

    /// Whether `--diff` has something to compare: a system that would run on the target
    /// (not a VM, an image, or nothing built).
    pub fn diffs(self) -> bool {
        !matches!(
            self,
            Action::DryBuild
                | Action::Edit
                | Action::ListGenerations
                | Action::Repl
                | Action::BuildVm
                | Action::BuildVmWithBootloader
                | Action::BuildImage
        )
    }
}
