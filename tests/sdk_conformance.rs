//! The clouds' official SDKs against the real `snapwarden sim`: each
//! `tests/sdk/<cloud>.py` runs its SDK (boto3, qingcloud-sdk,
//! ucloud-sdk-python3, ibm-cloud-sdk-core; raw HTTP for KakaoCloud, which has
//! no Python SDK) through the snapshot lifecycle and exits 0 only when every
//! step passed.
//!
//! The scripts need the pinned SDKs of `tests/sdk/requirements.txt`:
//! `SNAPWARDEN_SDK_PYTHON` names the interpreter of a virtual environment
//! that has them (`.ci/run` creates one and sets it). Without the variable
//! each test says it is skipped and passes, so a local `cargo test` needs no
//! Python.

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::Sim;

/// A script's whole run: its own polls are bounded at 30 s each, and the
/// throttle steps wait out a few back-offs.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

const PYTHON_VAR: &str = "SNAPWARDEN_SDK_PYTHON";

fn script(cloud: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdk")
        .join(format!("{cloud}.py"))
}

/// Runs `tests/sdk/<cloud>.py` against a fresh simulator and asserts it
/// exited 0, showing its output (which names each failed step) otherwise.
fn conformance(cloud: &str) {
    let Some(python) = std::env::var_os(PYTHON_VAR).filter(|p| !p.is_empty()) else {
        eprintln!(
            "skipped: {PYTHON_VAR} is not set (a Python with tests/sdk/requirements.txt; .ci/run sets it)"
        );
        return;
    };
    let sim = Sim::start("1s");
    let out = tempfile::tempdir().expect("a scratch directory for the script's output");
    let (stdout_path, stderr_path) = (out.path().join("stdout"), out.path().join("stderr"));
    let file = |p: &Path| std::fs::File::create(p).expect("create an output file");
    let started = Instant::now();
    let mut child = Command::new(&python)
        .arg(script(cloud))
        .arg("--base-url")
        .arg(&sim.url)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        // The simulator is on loopback: never through a proxy the
        // environment names.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        // Nothing of the developer's AWS setup: boto3 reads these from the
        // environment, and a named profile that does not exist here stops
        // the client before it sends anything.
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_DEFAULT_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_LIGHTSAIL")
        .env_remove("AWS_MAX_ATTEMPTS")
        .env_remove("AWS_RETRY_MODE")
        .stdin(Stdio::null())
        .stdout(file(&stdout_path))
        .stderr(file(&stderr_path))
        .spawn()
        .unwrap_or_else(|e| panic!("start {} ({PYTHON_VAR}): {e}", Path::new(&python).display()));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the script") {
            break Some(status);
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let report = format!(
        "--- {cloud}.py stdout ---\n{}\n--- stderr ---\n{}\n--- simulator stderr ---\n{}",
        read(&stdout_path),
        read(&stderr_path),
        sim.stderr.text()
    );
    match status {
        None => panic!("{cloud}.py did not finish within {SCRIPT_TIMEOUT:?}\n{report}"),
        Some(s) if !s.success() => panic!("{cloud}.py failed ({s})\n{report}"),
        Some(_) => eprintln!("{cloud}.py passed in {:?}", started.elapsed()),
    }
}

#[test]
fn qingcloud_sdk() {
    conformance("qingcloud");
}

#[test]
fn lightsail_boto3() {
    conformance("lightsail");
}

#[test]
fn ucloudstack_sdk() {
    conformance("ucloudstack");
}

#[test]
fn powervs_ibm_sdk_core() {
    conformance("powervs");
}

#[test]
fn kakaocloud_raw_http() {
    conformance("kakaocloud");
}
