//! The condition language of suspenders: `cryo.temp > 310 and (beam.current < 1 or not
//! shutter.open == 1)`.
//!
//! Grammar (lowest precedence first):
//!
//! ```text
//! or      := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | "(" or ")" | operand OP operand
//! operand := NUMBER | STREAM.CHANNEL
//! OP      := < | <= | > | >= | == | !=
//! ```
//!
//! `&&`, `||` and `!` are accepted for `and`, `or` and `not`. A problem is reported at the
//! offending token, with its byte offset in the expression, so the compiler can point at the
//! file's line and column and draw a caret under it.

use crate::plan::{ChannelRef, CmpOp, Condition, Node, Operand};

/// A problem in an expression, at a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExprError {
    /// Byte offset of the offending token in the expression.
    pub offset: usize,
    /// Its length in bytes (at least 1, for the caret).
    pub len: usize,
    /// What is wrong.
    pub message: String,
}

impl ExprError {
    /// The message, then the expression with a caret under the offending token.
    pub(crate) fn with_caret(&self, text: &str) -> String {
        let col = text[..self.offset.min(text.len())].chars().count();
        let width = text
            .get(self.offset..self.offset + self.len)
            .map_or(1, |t| t.chars().count().max(1));
        format!(
            "{}\n    {text}\n    {}{}",
            self.message,
            " ".repeat(col),
            "^".repeat(width)
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Number(f64),
    Channel(String, String),
    Op(CmpOp),
    And,
    Or,
    Not,
    Open,
    Close,
    End,
}

struct Token {
    tok: Tok,
    at: usize,
    len: usize,
}

fn describe(tok: &Tok, text: &str) -> String {
    match tok {
        Tok::End => "the end of the expression".to_string(),
        _ => format!("`{text}`"),
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, ExprError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let two = text.get(i..i + 2).unwrap_or("");
        let (tok, len) = match (c, two) {
            (_, "<=") => (Tok::Op(CmpOp::Le), 2),
            (_, ">=") => (Tok::Op(CmpOp::Ge), 2),
            (_, "==") => (Tok::Op(CmpOp::Eq), 2),
            (_, "!=") => (Tok::Op(CmpOp::Ne), 2),
            (_, "&&") => (Tok::And, 2),
            (_, "||") => (Tok::Or, 2),
            (b'<', _) => (Tok::Op(CmpOp::Lt), 1),
            (b'>', _) => (Tok::Op(CmpOp::Gt), 1),
            (b'!', _) => (Tok::Not, 1),
            (b'(', _) => (Tok::Open, 1),
            (b')', _) => (Tok::Close, 1),
            (b'0'..=b'9' | b'-' | b'+' | b'.', _) => {
                let mut j = i + 1;
                while j < bytes.len()
                    && (bytes[j].is_ascii_digit()
                        || bytes[j] == b'.'
                        || bytes[j] == b'e'
                        || bytes[j] == b'E'
                        || ((bytes[j] == b'-' || bytes[j] == b'+')
                            && matches!(bytes[j - 1], b'e' | b'E')))
                {
                    j += 1;
                }
                let word = &text[i..j];
                match word.parse::<f64>() {
                    Ok(x) if x.is_finite() => (Tok::Number(x), j - i),
                    _ => {
                        return Err(ExprError {
                            offset: i,
                            len: j - i,
                            message: format!("`{word}` is not a number"),
                        });
                    }
                }
            }
            (c, _) if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i + 1;
                while j < bytes.len()
                    && (bytes[j].is_ascii_alphanumeric() || matches!(bytes[j], b'_' | b'-' | b'.'))
                {
                    j += 1;
                }
                let word = &text[i..j];
                let tok = match word {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    _ => match word.split_once('.') {
                        Some((s, ch)) if !s.is_empty() && !ch.is_empty() => {
                            Tok::Channel(s.to_string(), ch.to_string())
                        }
                        _ => {
                            return Err(ExprError {
                                offset: i,
                                len: j - i,
                                message: format!(
                                    "`{word}` is not a channel; write STREAM.CHANNEL, e.g. \
                                     cryo.temp"
                                ),
                            });
                        }
                    },
                };
                (tok, j - i)
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or(' ');
                return Err(ExprError {
                    offset: i,
                    len: ch.len_utf8(),
                    message: format!("unexpected `{ch}`"),
                });
            }
        };
        out.push(Token {
            tok,
            at: start,
            len,
        });
        i += len;
    }
    out.push(Token {
        tok: Tok::End,
        at: text.len(),
        len: 1,
    });
    Ok(out)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    channels: Vec<ChannelRef>,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // `tokens` always ends with `End`, and `pos` never moves past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> &Token {
        let i = self.pos.min(self.tokens.len() - 1);
        if self.tokens[i].tok != Tok::End {
            self.pos += 1;
        }
        &self.tokens[i]
    }

    fn error_at(&self, token: &Token, expected: &str) -> ExprError {
        let shown = self
            .text
            .get(token.at..token.at + token.len)
            .unwrap_or_default();
        ExprError {
            offset: token.at,
            len: token.len,
            message: format!("expected {expected}, found {}", describe(&token.tok, shown)),
        }
    }

    fn or(&mut self) -> Result<Node, ExprError> {
        let mut left = self.and()?;
        while self.peek().tok == Tok::Or {
            self.next();
            left = Node::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Node, ExprError> {
        let mut left = self.unary()?;
        while self.peek().tok == Tok::And {
            self.next();
            left = Node::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Node, ExprError> {
        match self.peek().tok {
            Tok::Not => {
                self.next();
                Ok(Node::Not(Box::new(self.unary()?)))
            }
            Tok::Open => {
                self.next();
                let inner = self.or()?;
                if self.peek().tok != Tok::Close {
                    return Err(self.error_at(self.peek(), "`)`"));
                }
                self.next();
                Ok(inner)
            }
            _ => {
                let a = self.operand()?;
                let op = match self.peek().tok {
                    Tok::Op(op) => op,
                    _ => {
                        return Err(
                            self.error_at(self.peek(), "a comparison (<, <=, >, >=, ==, !=)")
                        );
                    }
                };
                self.next();
                let b = self.operand()?;
                Ok(Node::Compare(a, op, b))
            }
        }
    }

    fn operand(&mut self) -> Result<Operand, ExprError> {
        let token = self.peek();
        match &token.tok {
            Tok::Number(x) => {
                let x = *x;
                self.next();
                Ok(Operand::Number(x))
            }
            Tok::Channel(stream, channel) => {
                let r = ChannelRef {
                    stream: stream.clone(),
                    channel: channel.clone(),
                };
                self.next();
                let index = match self.channels.iter().position(|c| *c == r) {
                    Some(i) => i,
                    None => {
                        self.channels.push(r);
                        self.channels.len() - 1
                    }
                };
                Ok(Operand::Channel(index))
            }
            _ => Err(self.error_at(token, "a number or a channel (STREAM.CHANNEL)")),
        }
    }
}

/// Parses a condition; the error names the offending token's offset.
pub(crate) fn parse(text: &str) -> Result<Condition, ExprError> {
    let tokens = tokenize(text)?;
    let mut p = Parser {
        text,
        tokens,
        pos: 0,
        channels: Vec::new(),
    };
    let root = p.or()?;
    if p.peek().tok != Tok::End {
        return Err(p.error_at(p.peek(), "`and`, `or` or the end of the expression"));
    }
    Ok(Condition {
        text: text.to_string(),
        root,
        channels: p.channels,
    })
}

/// Offsets of the tokens that name channels, for errors about unknown streams or channels:
/// `(offset, len)` per channel in [`Condition::channels`] order (first mention).
pub(crate) fn channel_spans(text: &str) -> Vec<(usize, usize)> {
    let Ok(tokens) = tokenize(text) else {
        return Vec::new();
    };
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut out = Vec::new();
    for t in tokens {
        if let Tok::Channel(s, c) = t.tok {
            if !seen.contains(&(s.clone(), c.clone())) {
                seen.push((s, c));
                out.push((t.at, t.len));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_channels() {
        let c = parse("cryo.temp > 310 or beam.i < 1 and not (cryo.temp >= 400)").expect("parses");
        assert_eq!(c.channels.len(), 2);
        // and binds tighter than or.
        assert!(matches!(c.root, Node::Or(..)));
        assert_eq!(c.eval(&[Some(300.0), Some(0.5)]), Some(true));
        assert_eq!(c.eval(&[Some(300.0), Some(2.0)]), Some(false));
        assert_eq!(c.eval(&[Some(311.0), Some(2.0)]), Some(true));
        assert!(parse("a.b<=-1.5e3 && x.y != 2").is_ok());
    }

    #[test]
    fn errors_point_at_the_offending_token_with_a_caret() {
        let text = "cryo.temp >> 310";
        let e = parse(text).expect_err("bad");
        assert_eq!(e.offset, 11);
        assert!(e.message.contains("found `>`"), "{}", e.message);
        let shown = e.with_caret(text);
        assert!(
            shown.ends_with("\n    cryo.temp >> 310\n               ^"),
            "{shown}"
        );

        let e = parse("temp > 310").expect_err("no stream");
        assert_eq!((e.offset, e.len), (0, 4));
        let e = parse("cryo.temp > 310 and").expect_err("dangling");
        assert_eq!(e.offset, 19);
        assert!(e.message.contains("end of the expression"));
        let e = parse("(cryo.temp > 1").expect_err("unclosed");
        assert!(e.message.contains("expected `)`"));
        let e = parse("cryo.temp > 3.1.4").expect_err("number");
        assert_eq!(e.offset, 12);
        let e = parse("cryo.temp ? 3").expect_err("char");
        assert_eq!(e.offset, 10);
        assert_eq!(channel_spans("a.b > 1 or c.d < a.b"), vec![(0, 3), (11, 3)]);
    }
}
