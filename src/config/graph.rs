//! The component graph: unique names, inputs that exist and carry a stream, no cycles.
//!
//! Nodes are every component of the file (instruments, stages, sinks) and edges run from a
//! producer to each consumer that lists it in `inputs`. The checks here know only names, kinds
//! and input lists, never a component's own configuration.

use std::collections::HashMap;

use super::error::Diagnostics;
use super::value::{Span, join};

/// What a component is; decides whether it produces a stream and whether it may have inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Produces a stream; has no inputs.
    Instrument,
    /// Consumes streams and produces one.
    Stage,
    /// Consumes streams; produces none, so it cannot be an input.
    Sink,
    /// The `primary` stream of a count, scan or grid plan: produces a stream; has no inputs.
    Plan,
}

impl Kind {
    /// The top-level table the kind is declared in.
    pub(crate) fn section(self) -> &'static str {
        match self {
            Kind::Instrument => "instruments",
            Kind::Stage => "stages",
            Kind::Sink => "sinks",
            Kind::Plan => "plan",
        }
    }
}

/// One component as the graph sees it.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// The table's name.
    pub(crate) name: String,
    /// Its kind.
    pub(crate) kind: Kind,
    /// Where its name is written (the key of its table).
    pub(crate) span: Span,
    /// Names listed in its `inputs`, each where it is written.
    pub(crate) inputs: Vec<(String, Span)>,
}

impl Node {
    /// `instruments.scope`.
    pub(crate) fn path(&self) -> String {
        join(self.kind.section(), &self.name)
    }
}

/// Checks names and inputs and looks for cycles; reports every problem found.
///
/// `position` turns a byte offset into a 1-based (line, column), for messages that refer to
/// another place in the file.
pub(crate) fn check(
    nodes: &[Node],
    position: impl Fn(usize) -> (usize, usize),
    d: &mut Diagnostics,
) {
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        if let Some(&first) = by_name.get(node.name.as_str()) {
            let other = &nodes[first];
            d.at(
                node.span.clone(),
                &node.path(),
                format!(
                    "the name `{}` is already used by {} (line {}); names must be unique across \
                     instruments, stages and sinks",
                    node.name,
                    other.path(),
                    position(other.span.start).0
                ),
            );
        } else {
            by_name.insert(&node.name, i);
        }
    }

    let producers: Vec<String> = nodes
        .iter()
        .filter(|n| n.kind != Kind::Sink)
        .map(Node::path)
        .collect();
    let mut edges: Vec<Vec<(usize, Span)>> = vec![Vec::new(); nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        let inputs_path = join(&node.path(), "inputs");
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (input, span) in &node.inputs {
            if let Some(first) = seen.insert(input, span.start) {
                d.at(span.clone(), &inputs_path, {
                    let (line, column) = position(first);
                    format!("`{input}` is listed twice (first at {line}:{column})")
                });
                continue;
            }
            let Some(&source) = by_name.get(input.as_str()) else {
                let known = if producers.is_empty() {
                    "there are no instruments".to_string()
                } else {
                    format!("components that produce a stream: {}", producers.join(", "))
                };
                d.at(
                    span.clone(),
                    &inputs_path,
                    format!(
                        "`{input}` (referenced by {}) does not exist; {known}",
                        node.path()
                    ),
                );
                continue;
            };
            if nodes[source].kind == Kind::Sink {
                d.at(
                    span.clone(),
                    &inputs_path,
                    format!(
                        "`{input}` is a sink ({}), and sinks produce no stream; inputs name \
                         instruments or stages",
                        nodes[source].path()
                    ),
                );
                continue;
            }
            edges[source].push((i, span.clone()));
        }
    }

    let adjacency: Vec<Vec<usize>> = edges
        .iter()
        .map(|out| out.iter().map(|(to, _)| *to).collect())
        .collect();
    for cycle in find_cycles(&adjacency) {
        // The edge that closes the cycle runs from its last node to its first.
        let (Some(&first), Some(&last)) = (cycle.first(), cycle.last()) else {
            continue;
        };
        let span = edges[last]
            .iter()
            .find(|(to, _)| *to == first)
            .map_or_else(|| nodes[first].span.clone(), |(_, s)| s.clone());
        let mut names: Vec<&str> = cycle.iter().map(|&i| nodes[i].name.as_str()).collect();
        names.push(&nodes[first].name);
        d.at(
            span,
            &join(&nodes[first].path(), "inputs"),
            format!("inputs form a cycle: {}", names.join(" → ")),
        );
    }
}

/// Finds cycles in a directed graph given as adjacency lists (`adjacency[from]` = targets).
///
/// Returns one cycle per back edge of a depth-first search, each as the nodes along it in edge
/// order (the last node has an edge to the first). An acyclic graph returns nothing; every graph
/// with a cycle returns at least one.
pub(crate) fn find_cycles(adjacency: &[Vec<usize>]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Color {
        New,
        Open,
        Done,
    }
    let mut color = vec![Color::New; adjacency.len()];
    let mut cycles = Vec::new();
    for root in 0..adjacency.len() {
        if color[root] != Color::New {
            continue;
        }
        // (node, index of the next edge to follow); the stack is the current path.
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        color[root] = Color::Open;
        while let Some(top) = stack.last_mut() {
            let node = top.0;
            let Some(&to) = adjacency[node].get(top.1) else {
                color[node] = Color::Done;
                stack.pop();
                continue;
            };
            top.1 += 1;
            match color.get(to).copied() {
                Some(Color::New) => {
                    color[to] = Color::Open;
                    stack.push((to, 0));
                }
                Some(Color::Open) => {
                    if let Some(start) = stack.iter().position(|&(n, _)| n == to) {
                        cycles.push(stack[start..].iter().map(|&(n, _)| n).collect());
                    }
                }
                Some(Color::Done) | None => {}
            }
        }
    }
    cycles
}
