//! Tokenizer and recursive-descent parser for selectors. Keywords are case-insensitive; nesting is bounded so
//! a hostile selector cannot overflow the stack.

use super::{ArithOp, CmpOp, Expr, LikePart, SelectorError, Val};

/// Deepest nesting of parentheses and NOTs accepted.
const MAX_DEPTH: usize = 64;
/// Longest selector accepted (bytes), and most tokens (evaluation recurses over the expression tree).
const MAX_LEN: usize = 16 * 1024;
const MAX_TOKENS: usize = 1000;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn err(position: usize, reason: impl Into<String>) -> SelectorError {
    SelectorError {
        position,
        reason: reason.into(),
    }
}

fn tokenize(text: &str) -> Result<Vec<(usize, Tok)>, SelectorError> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' | ')' | ',' => {
                out.push((
                    pos,
                    match c {
                        '(' => Tok::LParen,
                        ')' => Tok::RParen,
                        _ => Tok::Comma,
                    },
                ));
                i += 1;
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err(pos, "unterminated string")),
                        Some((_, '\'')) if matches!(chars.get(i + 1), Some((_, '\''))) => {
                            s.push('\'');
                            i += 2;
                        }
                        Some((_, '\'')) => {
                            i += 1;
                            break;
                        }
                        Some((_, ch)) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push((pos, Tok::Str(s)));
            }
            '0'..='9' | '.' => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|(_, ch)| ch.is_ascii_alphanumeric() || *ch == '.')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().map(|(_, ch)| ch).collect();
                let trimmed = word.trim_end_matches(['l', 'L']);
                let tok = if let Ok(n) = trimmed.parse::<i64>() {
                    Tok::Int(n)
                } else if let Ok(f) = word.trim_end_matches(['d', 'D', 'f', 'F']).parse::<f64>() {
                    Tok::Float(f)
                } else {
                    return Err(err(pos, format!("bad number {word}")));
                };
                out.push((pos, tok));
            }
            c if c.is_alphabetic() || c == '_' || c == '$' => {
                let start = i;
                while chars.get(i).is_some_and(|(_, ch)| {
                    ch.is_alphanumeric() || *ch == '_' || *ch == '$' || *ch == '.'
                }) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().map(|(_, ch)| ch).collect();
                out.push((pos, Tok::Ident(word)));
            }
            _ => {
                let two: String = chars[i..].iter().take(2).map(|(_, ch)| ch).collect();
                let op = ["<>", "<=", ">="]
                    .into_iter()
                    .find(|o| two == *o)
                    .or_else(|| {
                        ["=", "<", ">", "+", "-", "*", "/"]
                            .into_iter()
                            .find(|o| o.starts_with(c))
                    })
                    .ok_or_else(|| err(pos, format!("unexpected {c:?}")))?;
                i += op.len();
                out.push((pos, Tok::Op(op)));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    at: usize,
    depth: usize,
    end: usize,
}

impl Parser {
    fn pos(&self) -> usize {
        self.toks.get(self.at).map_or(self.end, |(p, _)| *p)
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|(_, t)| t)
    }

    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(w)) if w.eq_ignore_ascii_case(k))
    }

    fn eat_keyword(&mut self, k: &str) -> bool {
        let yes = self.keyword(k);
        if yes {
            self.at += 1;
        }
        yes
    }

    fn expect_keyword(&mut self, k: &str) -> Result<(), SelectorError> {
        if self.eat_keyword(k) {
            Ok(())
        } else {
            Err(err(self.pos(), format!("expected {k}")))
        }
    }

    fn eat(&mut self, t: &Tok) -> bool {
        let yes = self.peek() == Some(t);
        if yes {
            self.at += 1;
        }
        yes
    }

    fn nest(&mut self) -> Result<(), SelectorError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err(self.pos(), "nested too deeply"));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, SelectorError> {
        let mut left = self.and()?;
        while self.eat_keyword("OR") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, SelectorError> {
        let mut left = self.not()?;
        while self.eat_keyword("AND") {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, SelectorError> {
        if self.eat_keyword("NOT") {
            self.nest()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, SelectorError> {
        let left = self.sum()?;
        if let Some(Tok::Op(op)) = self.peek() {
            let op = match *op {
                "=" => Some(CmpOp::Eq),
                "<>" => Some(CmpOp::Ne),
                "<" => Some(CmpOp::Lt),
                ">" => Some(CmpOp::Gt),
                "<=" => Some(CmpOp::Le),
                ">=" => Some(CmpOp::Ge),
                _ => None,
            };
            if let Some(op) = op {
                self.at += 1;
                let right = self.sum()?;
                return Ok(Expr::Cmp(Box::new(left), op, Box::new(right)));
            }
        }
        if self.eat_keyword("IS") {
            let negated = self.eat_keyword("NOT");
            self.expect_keyword("NULL")?;
            return Ok(Expr::IsNull(Box::new(left), negated));
        }
        let negated = self.eat_keyword("NOT");
        if self.eat_keyword("LIKE") {
            let pattern = self.string()?;
            let escape = if self.eat_keyword("ESCAPE") {
                let e = self.string()?;
                let mut chars = e.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Some(c),
                    _ => return Err(err(self.pos(), "ESCAPE takes one character")),
                }
            } else {
                None
            };
            return Ok(Expr::Like {
                value: Box::new(left),
                pattern: like_pattern(&pattern, escape),
                negated,
            });
        }
        if self.eat_keyword("BETWEEN") {
            let low = self.sum()?;
            self.expect_keyword("AND")?;
            let high = self.sum()?;
            return Ok(Expr::Between {
                value: Box::new(left),
                low: Box::new(low),
                high: Box::new(high),
                negated,
            });
        }
        if self.eat_keyword("IN") {
            if !self.eat(&Tok::LParen) {
                return Err(err(self.pos(), "expected ( after IN"));
            }
            let mut set = vec![Val::Str(self.string()?)];
            while self.eat(&Tok::Comma) {
                set.push(Val::Str(self.string()?));
            }
            if !self.eat(&Tok::RParen) {
                return Err(err(self.pos(), "expected )"));
            }
            return Ok(Expr::In {
                value: Box::new(left),
                set,
                negated,
            });
        }
        if negated {
            return Err(err(self.pos(), "expected LIKE, BETWEEN or IN after NOT"));
        }
        Ok(left)
    }

    fn string(&mut self) -> Result<String, SelectorError> {
        match self.peek().cloned() {
            Some(Tok::Str(s)) => {
                self.at += 1;
                Ok(s)
            }
            _ => Err(err(self.pos(), "expected a string")),
        }
    }

    fn sum(&mut self) -> Result<Expr, SelectorError> {
        let mut left = self.product()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op("+")) => ArithOp::Add,
                Some(Tok::Op("-")) => ArithOp::Sub,
                _ => return Ok(left),
            };
            self.at += 1;
            left = Expr::Arith(Box::new(left), op, Box::new(self.product()?));
        }
    }

    fn product(&mut self) -> Result<Expr, SelectorError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op("*")) => ArithOp::Mul,
                Some(Tok::Op("/")) => ArithOp::Div,
                _ => return Ok(left),
            };
            self.at += 1;
            left = Expr::Arith(Box::new(left), op, Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Expr, SelectorError> {
        if self.eat(&Tok::Op("-")) {
            self.nest()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Neg(Box::new(inner)));
        }
        if self.eat(&Tok::Op("+")) {
            return self.unary();
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, SelectorError> {
        let pos = self.pos();
        let Some(tok) = self.peek().cloned() else {
            return Err(err(pos, "unexpected end"));
        };
        self.at += 1;
        Ok(match tok {
            Tok::LParen => {
                self.nest()?;
                let inner = self.or()?;
                self.depth -= 1;
                if !self.eat(&Tok::RParen) {
                    return Err(err(self.pos(), "expected )"));
                }
                inner
            }
            Tok::Str(s) => Expr::Lit(Val::Str(s)),
            Tok::Int(n) => Expr::Lit(Val::Int(n)),
            Tok::Float(f) => Expr::Lit(Val::Float(f)),
            Tok::Ident(w) if w.eq_ignore_ascii_case("TRUE") => Expr::Lit(Val::Bool(true)),
            Tok::Ident(w) if w.eq_ignore_ascii_case("FALSE") => Expr::Lit(Val::Bool(false)),
            Tok::Ident(w) if w.eq_ignore_ascii_case("NULL") => Expr::Lit(Val::Null),
            Tok::Ident(w) if is_reserved(&w) => return Err(err(pos, format!("unexpected {w}"))),
            Tok::Ident(w) => Expr::Ident(w),
            other => return Err(err(pos, format!("unexpected {other:?}"))),
        })
    }
}

fn is_reserved(w: &str) -> bool {
    ["AND", "OR", "NOT", "IS", "LIKE", "BETWEEN", "IN", "ESCAPE"]
        .iter()
        .any(|k| w.eq_ignore_ascii_case(k))
}

fn like_pattern(pattern: &str, escape: Option<char>) -> Vec<LikePart> {
    let mut out = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            c if Some(c) == escape => match chars.next() {
                Some(next) => LikePart::Char(next),
                None => LikePart::Char(c),
            },
            '%' => LikePart::Any,
            '_' => LikePart::One,
            c => LikePart::Char(c),
        });
    }
    // Runs of % match the same as one (and keep matching linear in practice).
    out.dedup_by(|a, b| *a == LikePart::Any && *b == LikePart::Any);
    out
}

pub(super) fn parse(text: &str) -> Result<Expr, SelectorError> {
    if text.len() > MAX_LEN {
        return Err(err(0, "selector too long"));
    }
    let toks = tokenize(text)?;
    if toks.len() > MAX_TOKENS {
        return Err(err(0, "selector too long"));
    }
    let mut p = Parser {
        toks,
        at: 0,
        depth: 0,
        end: text.len(),
    };
    let expr = p.or()?;
    if p.at != p.toks.len() {
        return Err(err(p.pos(), "unexpected trailing input"));
    }
    Ok(expr)
}
