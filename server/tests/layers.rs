//! The server's layer rule, executable: which of its modules may import
//! which. It reads the sources (`use crate::...`, `use super::...` and
//! `crate::...` paths outside the inline tests), so an import against the
//! floors fails the suite instead of drifting in.
//!
//! Floors, lowest first: `domain` (plain types and rules) → the stores and
//! the use cases (`app`) → the adapters (`routes`, `web`, `uplink`, the
//! commands) → the composition (`http`, `lib.rs`, `main.rs`).

// A test: a source that cannot be read is a failure to report, not handle.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`a::b`) → the modules it imports.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "bin") {
                sources(&path, found);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `lib.rs` is the root, "".
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts.join("::")
}

/// The code outside inline tests and comments.
fn code(text: &str) -> String {
    let text = text
        .find("#[cfg(test)]\nmod tests")
        .map_or(text, |at| &text[..at]);
    text.lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find("::{") else {
        return vec![tree];
    };
    let (prefix, rest) = (&tree[..open], &tree[open + 3..tree.len() - 1]);
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in rest.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&rest[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&rest[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand(&format!("{prefix}::{p}")))
        .collect()
}

/// Every path starting at `crate` or `super` in `code`.
fn paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for statement in code.split(';') {
        let statement = statement.trim();
        let tree = statement
            .strip_prefix("pub use ")
            .or_else(|| statement.strip_prefix("pub(crate) use "))
            .or_else(|| statement.strip_prefix("use "));
        if let Some(tree) = tree.filter(|t| t.starts_with("crate::") || t.starts_with("super::")) {
            found.extend(expand(tree));
        }
    }
    for root in ["crate::", "super::"] {
        for (at, _) in code.match_indices(root) {
            let path: String = code[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            found.push(path);
        }
    }
    found
}

/// The module `path` (seen in module `from`) names, if any.
fn resolve(from: &str, path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let mut parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
    let mut base: Vec<&str> = from.split("::").filter(|p| !p.is_empty()).collect();
    match parts.first() {
        Some(&"crate") => {
            base.clear();
            parts.remove(0);
        }
        Some(&"super") => {
            while parts.first() == Some(&"super") {
                base.pop();
                parts.remove(0);
            }
        }
        _ => return None,
    }
    base.extend(parts.iter().map(|p| p.split(" as ").next().unwrap_or(p)));
    (1..=base.len())
        .rev()
        .map(|n| base[..n].join("::"))
        .find(|candidate| modules.contains(candidate))
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut graph = Graph::new();
    for file in &files {
        let module = module_of(&src, file);
        if module
            .rsplit("::")
            .next()
            .is_some_and(|m| m.ends_with("tests"))
        {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let imports = graph.entry(module.clone()).or_default();
        for path in paths(&code(&text)) {
            if let Some(target) = resolve(&module, &path, &modules)
                && !target.is_empty()
                && target != module
                && !module.starts_with(&format!("{target}::"))
            {
                imports.insert(target);
            }
        }
    }
    graph
}

/// `module` is `floor` or inside it.
fn within(module: &str, floor: &str) -> bool {
    module == floor || module.starts_with(&format!("{floor}::"))
}

/// The imports from modules in `from` into modules in `into`, as text.
fn imports_between(graph: &Graph, from: &str, into: &[&str]) -> Vec<String> {
    graph
        .iter()
        .filter(|(module, _)| within(module, from))
        .flat_map(|(module, imports)| {
            imports
                .iter()
                .filter(|target| into.iter().any(|floor| within(target, floor)))
                .map(move |target| format!("{module} imports {target}"))
        })
        .collect()
}

/// Strongly connected groups of modules (Tarjan), largest first.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        groups: Vec<Vec<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a str) {
        let n = w.index.len();
        w.index.insert(v, n);
        w.low.insert(v, n);
        w.stack.push(v);
        for next in w.graph.get(v).into_iter().flatten() {
            let next = next.as_str();
            if !w.index.contains_key(next) {
                visit(w, next);
                let low = w.low[v].min(w.low[next]);
                w.low.insert(v, low);
            } else if w.stack.contains(&next) {
                let low = w.low[v].min(w.index[next]);
                w.low.insert(v, low);
            }
        }
        if w.low[v] == w.index[v] {
            let mut group = Vec::new();
            while let Some(top) = w.stack.pop() {
                group.push(top.to_owned());
                if top == v {
                    break;
                }
            }
            w.groups.push(group);
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        groups: Vec::new(),
    };
    for module in graph.keys() {
        if !walk.index.contains_key(module.as_str()) {
            visit(&mut walk, module);
        }
    }
    walk.groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
    walk.groups
}

#[test]
fn no_import_cycle_spans_more_than_two_files() {
    let graph = graph();
    assert!(graph.len() > 100, "the sources were read: {}", graph.len());
    let large: Vec<_> = cycles(&graph).into_iter().filter(|g| g.len() > 2).collect();
    assert!(large.is_empty(), "import cycles: {large:?}");
}

#[test]
fn the_domain_imports_nothing_above_it_and_no_runtime_or_database() {
    let graph = graph();
    let upward: Vec<_> = graph
        .iter()
        .filter(|(module, _)| within(module, "domain"))
        .flat_map(|(module, imports)| {
            imports
                .iter()
                .filter(|target| !within(target, "domain"))
                .map(move |target| format!("{module} imports {target}"))
        })
        .collect();
    assert!(upward.is_empty(), "{upward:?}");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/domain");
    let mut files = Vec::new();
    sources(&src, &mut files);
    for file in files {
        let text = code(&std::fs::read_to_string(&file).unwrap());
        for crate_name in [
            "tokio",
            "axum",
            "rusqlite",
            "tokio_postgres",
            "deadpool_postgres",
        ] {
            assert!(
                !text.contains(&format!("{crate_name}::")),
                "{} uses {crate_name}",
                file.display()
            );
        }
    }
}

#[test]
fn use_cases_and_stores_import_no_adapter() {
    let graph = graph();
    let adapters = ["routes", "web", "commands", "http", "policy"];
    let mut wrong = imports_between(&graph, "app", &adapters);
    wrong.extend(imports_between(
        &graph,
        "store",
        &["routes", "commands", "http", "app"],
    ));
    wrong.extend(imports_between(&graph, "workflow", &adapters));
    wrong.extend(imports_between(&graph, "matching", &adapters));
    wrong.extend(imports_between(&graph, "archive", &adapters));
    wrong.extend(imports_between(&graph, "archive", &["uplink", "state"]));
    assert!(wrong.is_empty(), "{wrong:?}");
}

#[test]
fn adapters_never_call_each_other() {
    let graph = graph();
    let mut wrong = imports_between(&graph, "web", &["routes", "uplink", "commands"]);
    wrong.extend(imports_between(&graph, "routes", &["web", "commands"]));
    wrong.extend(imports_between(
        &graph,
        "uplink",
        &["routes", "web", "commands"],
    ));
    wrong.extend(imports_between(
        &graph,
        "auth",
        &["routes", "web", "uplink"],
    ));
    wrong.extend(imports_between(
        &graph,
        "desk_bus",
        &["uplink", "routes", "web"],
    ));
    // Only the binary's main.rs runs commands.
    for (module, imports) in &graph {
        if !within(module, "commands") && imports.iter().any(|t| within(t, "commands")) {
            wrong.push(format!("{module} imports commands"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:?}");
}
