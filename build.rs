//! Builds the service's two browser pages into OUT_DIR so the binary can embed them: the
//! GraphiQL page (web/graphiql, served at /graphql) and the dashboard (web/dashboard, served
//! at /). For each it copies the front-end sources there, installs the npm packages its
//! committed package-lock.json names (`npm ci`, only when the lockfile changed), bundles them
//! with esbuild (its `build.mjs`), and writes `<name>_assets.rs`, the table src/http includes.
//! No third-party code is ever committed; nothing is fetched at run time. Needs Node.js and npm
//! at build time.

use std::fmt::Write as _;
use std::fs;
use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One page: its source directory, its name in OUT_DIR, and the file its bundle must have.
struct Page {
    web: &'static str,
    name: &'static str,
    entry: &'static str,
}

const PAGES: &[Page] = &[
    Page {
        web: "web/graphiql",
        name: "graphiql",
        entry: "graphiql.js",
    },
    Page {
        web: "web/dashboard",
        name: "dashboard",
        entry: "dashboard.js",
    },
];

/// What a bundle is built from; anything else in its directory (node_modules, dist) is not.
const INPUTS: &[&str] = &["package.json", "package-lock.json", "build.mjs", "src"];

fn main() {
    for page in PAGES {
        for input in INPUTS {
            println!("cargo:rerun-if-changed={}/{input}", page.web);
        }
    }
    for page in PAGES {
        if let Err(message) = build(page) {
            // A panic in a build script is shown whole by cargo; make it say what to do.
            panic!("\n\nbuilding the {} page failed: {message}\n\n", page.name);
        }
    }
}

fn build(page: &Page) -> Result<(), String> {
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| format!("OUT_DIR: {e}"))?);
    let manifest = PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").map_err(|e| format!("CARGO_MANIFEST_DIR: {e}"))?,
    );
    let web = page.web;
    let source = manifest.join(web);
    let work = out.join(format!("{}-src", page.name));
    let bundle = out.join(page.name);

    fs::create_dir_all(&work).map_err(|e| format!("create {}: {e}", work.display()))?;
    for input in INPUTS {
        copy(&source.join(input), &work.join(input))?;
    }

    // `npm ci` removes and reinstalls node_modules; skip it while the lockfile it installed
    // from is unchanged, so an edit to src/ rebuilds in a second or two.
    let lock = fs::read(source.join("package-lock.json"))
        .map_err(|e| format!("read {web}/package-lock.json: {e}"))?;
    let stamp = work.join("node_modules/.installed-from-lock");
    if fs::read(&stamp).ok().as_deref() != Some(lock.as_slice()) {
        run(
            Command::new(npm())
                .args(["ci", "--no-audit", "--no-fund", "--prefer-offline"])
                .args(["--loglevel", "error"])
                .current_dir(&work),
            "npm ci",
        )?;
        fs::write(&stamp, &lock).map_err(|e| format!("write {}: {e}", stamp.display()))?;
    }

    if bundle.exists() {
        fs::remove_dir_all(&bundle).map_err(|e| format!("clear {}: {e}", bundle.display()))?;
    }
    run(
        Command::new("node")
            .arg("build.mjs")
            .arg(&bundle)
            .current_dir(&work),
        "node build.mjs",
    )?;
    write_table(
        &bundle,
        page.entry,
        &out.join(format!("{}_assets.rs", page.name)),
    )
}

fn npm() -> &'static str {
    if cfg!(windows) {
        "npm.cmd"
    } else {
        "npm"
    }
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    match command.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!(
            "`{what}` exited with {status} (its output is above)"
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "`{what}` could not start: Node.js (18 or later) and npm must be on PATH to build \
             the embedded GraphiQL page and dashboard (Debian: `apt-get install nodejs npm`; or \
             https://nodejs.org)"
        )),
        Err(e) => Err(format!("`{what}` could not start: {e}")),
    }
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    if from.is_dir() {
        fs::create_dir_all(to).map_err(|e| format!("create {}: {e}", to.display()))?;
        let entries = fs::read_dir(from).map_err(|e| format!("read {}: {e}", from.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("read {}: {e}", from.display()))?;
            copy(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        // Copy only what changed, so esbuild sees stable files otherwise.
        if fs::read(from).ok() != fs::read(to).ok() {
            fs::copy(from, to).map_err(|e| format!("copy {}: {e}", from.display()))?;
        }
        Ok(())
    }
}

/// `ASSETS`: (file name, content type, bytes) for every file of the bundle, and `BUILD_ID`, a
/// hash of them all, which the asset URLs carry so browsers may cache them forever.
fn write_table(bundle: &Path, entry: &str, table: &Path) -> Result<(), String> {
    let mut files: Vec<PathBuf> = fs::read_dir(bundle)
        .map_err(|e| format!("read {}: {e}", bundle.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    let mut hasher = DefaultHasher::new();
    let mut rows = String::new();
    for path in &files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("odd file name {}", path.display()))?;
        let bytes = fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
        hasher.write(name.as_bytes());
        hasher.write(&bytes);
        let kind = match path.extension().and_then(|e| e.to_str()) {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("ttf") => "font/ttf",
            Some("woff2") => "font/woff2",
            Some("txt") => "text/plain; charset=utf-8",
            Some("svg") => "image/svg+xml",
            _ => "application/octet-stream",
        };
        let _ = writeln!(
            rows,
            "    ({name:?}, {kind:?}, include_bytes!({:?})),",
            path.display().to_string()
        );
    }
    if !files.iter().any(|p| p.ends_with(entry)) {
        return Err(format!("the bundle has no {entry}"));
    }
    let code = format!(
        "/// Hash of every bundled file; part of each asset's URL.\n\
         pub const BUILD_ID: &str = \"{:016x}\";\n\
         /// (file name, content type, bytes) of each bundled file.\n\
         pub const ASSETS: &[(&str, &str, &[u8])] = &[\n{rows}];\n",
        hasher.finish()
    );
    fs::write(table, code).map_err(|e| format!("write {}: {e}", table.display()))
}
