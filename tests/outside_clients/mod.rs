//! The outside clients the integration tests drive, installed on first use:
//! HdfsCLI, fsspec, pandas and Prometheus's text parser in a Python venv
//! under `target/` (pinned by `requirements.txt`), and Debian's headless
//! `chromium`. Idempotent and shared by concurrent tests through a file
//! lock. Where one cannot be installed a test skips with the reason, except
//! under `CI=true`, where that is a failure.

#![allow(dead_code)] // each test binary uses a part

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};

const REQUIREMENTS: &str = include_str!("requirements.txt");
/// The package that gives headless Chromium, as Debian names it.
const CHROMIUM_PACKAGE: &str = "chromium";

fn setup_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/outside-clients")
}

/// Skips (returns `None`) outside CI and fails inside it.
fn unavailable<T>(what: &str, reason: &str) -> Option<T> {
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{what} is needed under CI=true but could not be set up: {reason}");
    }
    eprintln!("skipping: {what} could not be set up: {reason}");
    None
}

/// Holds the set-up lock while alive.
fn lock() -> Result<Flock<File>, String> {
    let dir = setup_dir();
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let file = File::create(dir.join("lock")).map_err(|e| e.to_string())?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| format!("locking: {e}"))
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("{command:?} did not start: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{command:?} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// The venv's `python`, with every package of `requirements.txt` at its pinned version.
pub(crate) fn python() -> Option<PathBuf> {
    match install_venv() {
        Ok(python) => Some(python),
        Err(reason) => unavailable("the Python clients venv", &reason),
    }
}

fn install_venv() -> Result<PathBuf, String> {
    let _lock = lock()?;
    let venv = setup_dir().join("venv");
    let python = venv.join("bin/python");
    let stamp = venv.join("installed-requirements.txt");
    if fs::read_to_string(&stamp).is_ok_and(|installed| installed == REQUIREMENTS) {
        return Ok(python);
    }
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    let requirements = setup_dir().join("requirements.txt");
    fs::write(&requirements, REQUIREMENTS).map_err(|e| e.to_string())?;
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg("-r")
        .arg(&requirements))?;
    fs::write(&stamp, REQUIREMENTS).map_err(|e| e.to_string())?;
    Ok(python)
}

/// Headless Chromium, from Debian's package (installed with apt when
/// missing and this runs as root).
pub(crate) fn chromium() -> Option<PathBuf> {
    match install_chromium() {
        Ok(path) => Some(path),
        Err(reason) => unavailable("headless chromium", &reason),
    }
}

fn find_chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn install_chromium() -> Result<PathBuf, String> {
    if let Some(found) = find_chromium() {
        return Ok(found);
    }
    let _lock = lock()?;
    if let Some(found) = find_chromium() {
        return Ok(found);
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(format!(
            "not installed, and only root may `apt-get install {CHROMIUM_PACKAGE}`"
        ));
    }
    let apt = |args: &[&str]| {
        run(Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive"))
    };
    let install = [
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        CHROMIUM_PACKAGE,
    ];
    if apt(&install).is_err() {
        apt(&["update", "-q"])?;
        apt(&install)?;
    }
    find_chromium().ok_or_else(|| format!("{CHROMIUM_PACKAGE} installed but no binary found"))
}
