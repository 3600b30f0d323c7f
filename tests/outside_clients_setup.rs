//! The test set-up installs the outside clients at their pinned versions.

mod outside_clients;

use std::process::Command;

#[test]
fn python_clients_import_at_their_pinned_versions() {
    let Some(python) = outside_clients::python() else {
        return;
    };
    let script = "import importlib.metadata as m, hdfs, fsspec, pandas, prometheus_client, requests\n\
                  print(' '.join(f'{p}=={m.version(p)}' for p in ['hdfs', 'fsspec', 'pandas', 'prometheus_client', 'requests']))";
    let output = Command::new(&python).args(["-c", script]).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let installed = String::from_utf8_lossy(&output.stdout);
    let requirements = include_str!("outside_clients/requirements.txt");
    for pin in installed.split_whitespace() {
        assert!(
            requirements
                .lines()
                .any(|line| line.eq_ignore_ascii_case(pin)),
            "{pin} is not what requirements.txt pins"
        );
    }
}

#[test]
fn headless_chromium_runs() {
    let Some(chromium) = outside_clients::chromium() else {
        return;
    };
    let output = Command::new(&chromium).arg("--version").output().unwrap();
    assert!(output.status.success(), "{chromium:?} --version failed");
    assert!(String::from_utf8_lossy(&output.stdout).contains("Chromium"));
}
