//! The minimum Rust the README and `rust-version` state is the real one: the highest
//! `rust_version` of the locked crates a default build compiles (normal and build
//! dependencies, for this host), as `cargo metadata` reports it. A `cargo update` that pulls
//! in a crate needing a newer compiler fails here until both are raised, so a user on the
//! stated version can always build. `.ci/run` runs this first, under its own heading.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn host_triple() -> String {
    let out = Command::new("rustc").arg("-vV").output().expect("run rustc -vV");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap_or_else(|| panic!("no host in rustc -vV:\n{text}"))
        .to_owned()
}

fn metadata() -> Value {
    let out = Command::new(cargo())
        .current_dir(MANIFEST_DIR)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", &host_triple()])
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// `1.89` or `1.89.0` as comparable numbers; a missing part is 0.
fn version(text: &str) -> (u64, u64, u64) {
    let mut parts = text.split('.').map(|p| {
        p.parse::<u64>()
            .unwrap_or_else(|_| panic!("bad version {text:?}"))
    });
    let mut next = || parts.next().unwrap_or(0);
    (next(), next(), next())
}

/// The highest `rust_version` among the packages a default build of `root` compiles, with
/// the name and version of the package that sets it.
fn highest_locked(meta: &Value) -> (String, String, String) {
    let packages: HashMap<&str, &Value> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p))
        .collect();
    let nodes: HashMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let root = meta["resolve"]["root"].as_str().expect("a root package");
    let mut seen = HashSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().unwrap() {
            // Dev dependencies are not built for users; normal (kind null) and build ones are.
            let built = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            if built {
                stack.push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    seen.remove(root);
    seen.iter()
        .filter_map(|id| {
            let p = packages[id];
            let rv = p["rust_version"].as_str()?;
            Some((
                rv.to_owned(),
                p["name"].as_str()?.to_owned(),
                p["version"].as_str()?.to_owned(),
            ))
        })
        .max_by_key(|(rv, _, _)| version(rv))
        .expect("some locked crate states a rust_version")
}

/// The version in the README's "a Rust toolchain (X.Y or newer)".
fn readme_version() -> String {
    let readme = std::fs::read_to_string(Path::new(MANIFEST_DIR).join("README.md")).unwrap();
    let start = readme
        .find("Rust toolchain (")
        .expect("README states the Rust version")
        + "Rust toolchain (".len();
    let rest = &readme[start..];
    rest[..rest.find(" or newer)").expect("\"(X.Y or newer)\"")].to_owned()
}

#[test]
fn the_stated_minimum_rust_is_what_the_locked_crates_need() {
    let meta = metadata();
    let root = meta["resolve"]["root"].as_str().unwrap();
    let ours = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == root)
        .and_then(|p| p["rust_version"].as_str())
        .expect("Cargo.toml sets rust-version")
        .to_owned();
    let (needed, name, locked) = highest_locked(&meta);
    assert_eq!(
        version(&ours),
        version(&needed),
        "Cargo.toml says rust-version = {ours:?}, but the locked {name} {locked} needs Rust \
         {needed}: set rust-version and the README's \"Rust toolchain (... or newer)\" to \
         {needed}, or lock an older {name} (`cargo update -p {name} --precise VERSION`)"
    );
    let readme = readme_version();
    assert_eq!(
        version(&readme),
        version(&ours),
        "README.md says Rust {readme} or newer, Cargo.toml says rust-version = {ours:?}; make them agree"
    );
}
