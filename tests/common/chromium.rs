//! Headless Chromium for the tests that photograph a page (the export report, the dashboard
//! picture; the panel's browser tests drive it through playwright), and where the pictures go.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Chromium binary (`VITALWATCH_CHROMIUM`, else `/usr/bin/chromium`). Missing, the test
/// fails: `scripts/test` installs it.
pub fn chromium() -> PathBuf {
    let path = std::env::var_os("VITALWATCH_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "chromium is not installed at {}: run scripts/test, which installs it",
        path.display()
    );
    path
}

/// Where the tests put their pictures: `docs/screenshots` (the README's) when
/// `VITALWATCH_UPDATE_SCREENSHOTS=1`, else a directory under the build's target, so that a
/// test run leaves the repository as it was.
pub fn screenshots_dir() -> PathBuf {
    let dir = if std::env::var_os("VITALWATCH_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
        super::repo_root().join("docs/screenshots")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
    };
    std::fs::create_dir_all(&dir).expect("create the screenshots directory");
    dir
}

/// Photographs the local `page` at `width` × `height` CSS pixels (scale 1) into
/// [`screenshots_dir`]`/name`, checking that Chromium drew a PNG of that size with something
/// on it. Returns the picture's path.
pub fn screenshot(page: &Path, (width, height): (u32, u32), name: &str) -> PathBuf {
    let dir = tempfile::tempdir().expect("temp dir");
    let png = dir.path().join(name);
    let profile = dir.path().join("profile");
    let output = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert!(
        bytes.len() > 24 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is a PNG"
    );
    // Width and height from the IHDR chunk.
    let size =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    assert_eq!((size(16), size(20)), (width, height), "the picture's size");
    assert!(bytes.len() > 50_000, "a real rendering, not a blank page");
    let kept = screenshots_dir().join(name);
    std::fs::copy(&png, &kept).expect("keep the screenshot");
    kept
}
