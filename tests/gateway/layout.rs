//! The crate's shape, read from its source: the top-level modules import each other
//! without a cycle, and the gateway never imports the command line, the client-side tools
//! or the simulator (which import it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Modules outside the gateway: nothing on the request path may import them.
const OUTSIDE: [&str; 4] = ["cli", "output", "sim", "tools"];

/// Every Rust file under `src/`: its path relative to `src/` and its text.
fn sources() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
                files.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    files
}

/// Top-level module → the top-level modules its non-test code names as `crate::…`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in sources() {
        let top = rel.split('/').next().unwrap().trim_end_matches(".rs").to_owned();
        if top == "lib" || top == "main" || rel.contains("tests") {
            continue;
        }
        // Test modules at the end of a file may import anything.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let names = graph.entry(top.clone()).or_default();
        for line in code.lines().map(str::trim).filter(|l| !l.starts_with("//")) {
            for (i, _) in line.match_indices("crate::") {
                let name: String = line[i + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                if !name.is_empty() && name != top {
                    names.insert(name);
                }
            }
        }
    }
    graph
}

/// A cycle in the graph, if it has one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            return Some(path[start..].to_vec());
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_modules_import_each_other_without_a_cycle() {
    let graph = imports();
    assert!(graph.len() > 20, "read too few modules: {graph:?}");
    assert_eq!(cycle(&graph), None);
}

#[test]
fn the_gateway_imports_neither_the_tools_nor_the_simulator() {
    for (module, names) in imports() {
        if OUTSIDE.contains(&module.as_str()) {
            continue;
        }
        let outside: Vec<_> = names.iter().filter(|n| OUTSIDE.contains(&n.as_str())).collect();
        assert!(outside.is_empty(), "`{module}` imports {outside:?}");
    }
    assert!(imports()["sim"].is_empty(), "the simulator imports nothing of the gateway");
}

#[test]
fn no_two_public_types_share_a_name() {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (here, text) in sources() {
        for line in text.lines().map(str::trim_start) {
            let Some(rest) =
                ["pub struct ", "pub enum ", "pub trait ", "pub type "].iter().find_map(|p| line.strip_prefix(p))
            else {
                continue;
            };
            let name: String = rest.chars().take_while(char::is_ascii_alphanumeric).collect();
            if let Some(there) = seen.insert(name.clone(), here.clone()) {
                panic!("`{name}` is public in both {there} and {here}");
            }
        }
    }
    assert!(seen.len() > 50, "read too few types: {}", seen.len());
}
