//! Template pieces -> a tree of nodes: text, actions and `if`/`range`/`with` blocks.

use super::lex::{Piece, Tok};

#[derive(Clone, Debug)]
pub(super) enum Node {
    Text(String),
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
}

/// `$x := cmd | cmd arg` (`decl` empty without a declaration).
#[derive(Clone, Debug)]
pub(super) struct Pipeline {
    pub(super) decl: Vec<String>,
    /// `=` rather than `:=`.
    pub(super) assign: bool,
    pub(super) cmds: Vec<Vec<Arg>>,
}

#[derive(Clone, Debug)]
pub(super) enum Arg {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Func(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    /// A parenthesised pipeline and the fields read from its value.
    Sub(Box<Pipeline>, Vec<String>),
}

/// The most nested blocks a template may have.
const MAX_DEPTH: usize = 100;

pub(super) fn parse(pieces: Vec<Piece>, is_func: &dyn Fn(&str) -> bool) -> Result<Vec<Node>, String> {
    let mut p = Parser {
        pieces: pieces.into_iter(),
        is_func,
        depth: 0,
    };
    let (nodes, end) = p.list()?;
    match end {
        Stop::Eof => Ok(nodes),
        Stop::End => Err("unexpected {{end}}".into()),
        Stop::Else(_) => Err("unexpected {{else}}".into()),
    }
}

/// What ended a list of nodes.
enum Stop {
    Eof,
    End,
    /// `{{else}}` or `{{else if ...}}` (the tokens after `else`).
    Else(Vec<Tok>),
}

struct Parser<'a> {
    pieces: std::vec::IntoIter<Piece>,
    is_func: &'a dyn Fn(&str) -> bool,
    depth: usize,
}

impl Parser<'_> {
    fn list(&mut self) -> Result<(Vec<Node>, Stop), String> {
        let mut nodes = Vec::new();
        while let Some(piece) = self.pieces.next() {
            let toks = match piece {
                Piece::Text(t) => {
                    nodes.push(Node::Text(t));
                    continue;
                }
                Piece::Action(t) => t,
            };
            let keyword = match toks.first() {
                Some(Tok::Ident(k)) => k.as_str(),
                None => return Err("missing value for command".into()),
                _ => "",
            };
            match keyword {
                "end" if toks.len() == 1 => return Ok((nodes, Stop::End)),
                "else" => return Ok((nodes, Stop::Else(toks[1..].to_vec()))),
                "if" | "range" | "with" => {
                    let kw = keyword.to_string();
                    nodes.push(self.block(&kw, &toks[1..])?);
                }
                "define" | "template" | "block" | "break" | "continue" => {
                    return Err(format!("{{{{{keyword}}}}} is not supported in alert templates"))
                }
                _ => nodes.push(Node::Action(self.pipeline(&toks)?)),
            }
        }
        Ok((nodes, Stop::Eof))
    }

    fn block(&mut self, kw: &str, toks: &[Tok]) -> Result<Node, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("blocks nest deeper than {MAX_DEPTH}"));
        }
        let pipe = self.pipeline(toks)?;
        let (body, end) = self.list()?;
        let otherwise = match end {
            Stop::Eof => return Err(format!("unexpected EOF in {{{{{kw}}}}}")),
            Stop::End => Vec::new(),
            Stop::Else(rest) if rest.is_empty() => match self.list()? {
                (nodes, Stop::End) => nodes,
                _ => return Err(format!("expected {{{{end}}}} after {{{{else}}}} in {{{{{kw}}}}}")),
            },
            // `{{else if x}}` / `{{else with x}}`: a nested block that shares this one's end.
            Stop::Else(rest) => match rest.first() {
                Some(Tok::Ident(k)) if k == kw && kw != "range" => vec![self.block(kw, &rest[1..])?],
                _ => return Err(format!("unexpected tokens after {{{{else}}}} in {{{{{kw}}}}}")),
            },
        };
        self.depth -= 1;
        Ok(match kw {
            "if" => Node::If(pipe, body, otherwise),
            "range" => Node::Range(pipe, body, otherwise),
            _ => Node::With(pipe, body, otherwise),
        })
    }

    fn pipeline(&self, toks: &[Tok]) -> Result<Pipeline, String> {
        let bare = |t: Option<&Tok>| match t {
            Some(Tok::Var(n, f)) if f.is_empty() => Some(n.clone()),
            _ => None,
        };
        let is_decl = |t: Option<&Tok>| matches!(t, Some(Tok::Declare | Tok::Assign));
        // `$x := ...`, `$x = ...`, and range's `$i, $x := ...`
        let (decl, assign, rest) = match (bare(toks.first()), toks.get(1)) {
            (Some(x), t @ Some(_)) if is_decl(t) => (vec![x], t == Some(&Tok::Assign), &toks[2..]),
            (Some(i), Some(Tok::Comma)) => match bare(toks.get(2)) {
                Some(x) if is_decl(toks.get(3)) => (vec![i, x], toks[3] == Tok::Assign, &toks[4..]),
                _ => return Err("too many declarations in command".into()),
            },
            _ => (Vec::new(), false, toks),
        };
        let mut cmds = Vec::new();
        let mut pos = 0;
        while pos < rest.len() {
            let (cmd, next) = self.command(rest, pos)?;
            cmds.push(cmd);
            pos = next;
            if pos < rest.len() {
                if rest[pos] != Tok::Pipe {
                    return Err(format!("unexpected {:?} in command", rest[pos]));
                }
                pos += 1;
                if pos == rest.len() {
                    return Err("missing command after |".into());
                }
            }
        }
        if cmds.is_empty() {
            return Err("missing value for command".into());
        }
        Ok(Pipeline { decl, assign, cmds })
    }

    /// One command starting at `pos`: arguments up to a `|`, a `)` or the end.
    fn command(&self, toks: &[Tok], mut pos: usize) -> Result<(Vec<Arg>, usize), String> {
        let mut args = Vec::new();
        while pos < toks.len() {
            let arg = match &toks[pos] {
                Tok::Pipe | Tok::Close(_) => break,
                Tok::Open => {
                    let close = matching_close(toks, pos)?;
                    let Tok::Close(fields) = &toks[close] else {
                        unreachable!()
                    };
                    let inner = self.pipeline(&toks[pos + 1..close])?;
                    pos = close;
                    Arg::Sub(Box::new(inner), fields.clone())
                }
                Tok::Field(f) => Arg::Field(f.clone()),
                Tok::Var(n, f) => Arg::Var(n.clone(), f.clone()),
                Tok::Str(s) => Arg::Str(s.clone()),
                Tok::Int(n) => Arg::Int(*n),
                Tok::Float(f) => Arg::Float(*f),
                Tok::Ident(k) => match k.as_str() {
                    "true" => Arg::Bool(true),
                    "false" => Arg::Bool(false),
                    "nil" => Arg::Nil,
                    f if (self.is_func)(f) => Arg::Func(f.to_string()),
                    f => return Err(format!("function {f:?} not defined")),
                },
                t => return Err(format!("unexpected {t:?} in operand")),
            };
            args.push(arg);
            pos += 1;
        }
        if args.is_empty() {
            return Err("missing value for command".into());
        }
        Ok((args, pos))
    }
}

fn matching_close(toks: &[Tok], open: usize) -> Result<usize, String> {
    let mut depth = 0;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::Open => depth += 1,
            Tok::Close(_) => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i);
                }
            }
            _ => {}
        }
    }
    Err("unclosed left paren".into())
}
