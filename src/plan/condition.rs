//! Conditions over stream channels (`cryo.temp > 310 and beam.current < 1`), and the
//! [`Suspender`]s built from them. Plain data; the parser is `config::expr`.

use std::time::Duration;

/// A channel of a stream, as a condition names it: `STREAM.CHANNEL`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChannelRef {
    /// The stream (an instrument's name).
    pub stream: String,
    /// The channel (column) of that stream.
    pub channel: String,
}

impl std::fmt::Display for ChannelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.stream, self.channel)
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl CmpOp {
    fn apply(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
        }
    }
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A literal number.
    Number(f64),
    /// The latest value of a channel: an index into [`Condition::channels`].
    Channel(usize),
}

/// A node of a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `a OP b`.
    Compare(Operand, CmpOp, Operand),
    /// Both hold.
    And(Box<Node>, Box<Node>),
    /// Either holds.
    Or(Box<Node>, Box<Node>),
    /// `not x`.
    Not(Box<Node>),
}

/// A parsed condition: its text (for reports), its tree, and the channels it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// As written.
    pub text: String,
    /// The tree.
    pub root: Node,
    /// Each channel it reads, once, in order of first mention.
    pub channels: Vec<ChannelRef>,
}

impl Condition {
    /// Evaluates with `values[i]` the latest value of `channels[i]`; `None` while a value it
    /// needs is missing. A comparison with NaN is false.
    pub fn eval(&self, values: &[Option<f64>]) -> Option<bool> {
        eval(&self.root, values)
    }

    /// The channels and their values, for a cause: `cryo.temp = 311.2`.
    pub fn describe_values(&self, values: &[Option<f64>]) -> String {
        self.channels
            .iter()
            .zip(values)
            .map(|(c, v)| match v {
                Some(v) => format!("{c} = {v}"),
                None => format!("{c} = none yet"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn eval(node: &Node, values: &[Option<f64>]) -> Option<bool> {
    let operand = |o: &Operand| match o {
        Operand::Number(x) => Some(*x),
        Operand::Channel(i) => values.get(*i).copied().flatten(),
    };
    Some(match node {
        Node::Compare(a, op, b) => op.apply(operand(a)?, operand(b)?),
        Node::And(a, b) => eval(a, values)? && eval(b, values)?,
        Node::Or(a, b) => eval(a, values)? || eval(b, values)?,
        Node::Not(a) => !eval(a, values)?,
    })
}

/// A `[[plan.suspend]]` entry: holds the plan while `when` holds (for `hold_for`), and lets it
/// go once `resume_when` holds (or `when` no longer does) for `resume_after`.
#[derive(Debug, Clone, PartialEq)]
pub struct Suspender {
    /// Suspend when this holds...
    pub when: Condition,
    /// ...continuously for this long (`for`, default 0: at the first row where it holds).
    pub hold_for: Duration,
    /// Resume when this holds (default: when `when` no longer holds)...
    pub resume_when: Option<Condition>,
    /// ...and has held for this long (`resume_after`, default 0).
    pub resume_after: Duration,
}

impl Suspender {
    /// Every channel either condition reads, once.
    pub fn channels(&self) -> Vec<ChannelRef> {
        let mut all = self.when.channels.clone();
        for c in self.resume_when.iter().flat_map(|r| &r.channels) {
            if !all.contains(c) {
                all.push(c.clone());
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_values_give_no_answer_and_nan_compares_false() {
        let c = Condition {
            text: "a.x > 1 or a.y < 0".into(),
            root: Node::Or(
                Box::new(Node::Compare(
                    Operand::Channel(0),
                    CmpOp::Gt,
                    Operand::Number(1.0),
                )),
                Box::new(Node::Compare(
                    Operand::Channel(1),
                    CmpOp::Lt,
                    Operand::Number(0.0),
                )),
            ),
            channels: vec![],
        };
        assert_eq!(c.eval(&[Some(2.0), Some(1.0)]), Some(true));
        assert_eq!(c.eval(&[Some(0.0), Some(1.0)]), Some(false));
        assert_eq!(c.eval(&[Some(0.0), None]), None);
        assert_eq!(c.eval(&[Some(f64::NAN), Some(f64::NAN)]), Some(false));
    }
}
