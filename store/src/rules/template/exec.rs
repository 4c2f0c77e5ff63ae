//! Runs a parsed template over its data: variables in block scopes, field access, pipelines
//! (the previous command's value is the last argument of the next), Go's truth.

use super::parse::{Arg, Node, Pipeline};
use super::{fmt, funcs, Context, Value};

/// Bounds on one expansion: a template comes from a rule file, but a `range` over a large
/// query result must not make an alert text of unbounded size or run time.
const MAX_OUTPUT: usize = 1 << 20;
const MAX_STEPS: usize = 1_000_000;

pub(super) fn run(nodes: &[Node], data: Value, ctx: &Context) -> Result<String, String> {
    let mut ex = Exec {
        vars: vec![("$".to_string(), data.clone())],
        out: String::new(),
        steps: 0,
        ctx,
    };
    ex.list(nodes, &data)?;
    Ok(ex.out)
}

struct Exec<'a, 'c> {
    vars: Vec<(String, Value)>,
    out: String,
    steps: usize,
    ctx: &'a Context<'c>,
}

/// Go's truth: false, 0, nil and empty strings, maps and lists are false.
pub(super) fn truth(v: &Value) -> bool {
    match v {
        Value::Nil => false,
        Value::Bool(b) => *b,
        Value::Int(n) => *n != 0,
        Value::Float(f) => *f != 0.0,
        Value::Str(s) => !s.is_empty(),
        Value::Labels(m) => !m.is_empty(),
        Value::Map(m) => !m.is_empty(),
        Value::List(l) => !l.is_empty(),
        Value::Sample(_) | Value::Time(_) => true,
    }
}

impl Exec<'_, '_> {
    fn list(&mut self, nodes: &[Node], dot: &Value) -> Result<(), String> {
        for n in nodes {
            self.steps += 1;
            if self.steps > MAX_STEPS || self.out.len() > MAX_OUTPUT {
                return Err("the template runs too long or writes too much".into());
            }
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipeline(p, dot)?;
                    if p.decl.is_empty() {
                        self.out.push_str(&print(&v));
                    }
                }
                Node::If(p, then, otherwise) => {
                    let mark = self.vars.len();
                    let v = self.pipeline(p, dot)?;
                    let r = self.list(if truth(&v) { then } else { otherwise }, dot);
                    self.vars.truncate(mark);
                    r?;
                }
                Node::With(p, then, otherwise) => {
                    let mark = self.vars.len();
                    let v = self.pipeline(p, dot)?;
                    let r = if truth(&v) {
                        self.list(then, &v)
                    } else {
                        self.list(otherwise, dot)
                    };
                    self.vars.truncate(mark);
                    r?;
                }
                Node::Range(p, body, otherwise) => self.range(p, body, otherwise, dot)?,
            }
        }
        Ok(())
    }

    fn range(&mut self, p: &Pipeline, body: &[Node], otherwise: &[Node], dot: &Value) -> Result<(), String> {
        let mark = self.vars.len();
        let decl = Pipeline {
            decl: Vec::new(),
            assign: false,
            cmds: p.cmds.clone(),
        };
        let v = self.pipeline(&decl, dot)?;
        let items: Vec<(Value, Value)> = match v {
            Value::List(l) => l
                .into_iter()
                .enumerate()
                .map(|(i, v)| (Value::Int(i as i64), v))
                .collect(),
            Value::Labels(m) => m
                .iter()
                .map(|(k, v)| (Value::Str(k.clone()), Value::Str(v.clone())))
                .collect(),
            Value::Map(m) => m.into_iter().map(|(k, v)| (Value::Str(k), v)).collect(),
            Value::Int(n) => (0..n.max(0)).map(|i| (Value::Int(i), Value::Int(i))).collect(),
            Value::Nil => Vec::new(),
            other => return Err(format!("range can't iterate over {}", fmt::print(&other))),
        };
        if items.is_empty() {
            return self.list(otherwise, dot);
        }
        for (k, v) in items {
            let inner = self.vars.len();
            match p.decl.as_slice() {
                [x] => self.vars.push((x.clone(), v.clone())),
                [i, x] => {
                    self.vars.push((i.clone(), k));
                    self.vars.push((x.clone(), v.clone()));
                }
                _ => {}
            }
            let r = self.list(body, &v);
            self.vars.truncate(inner);
            r?;
        }
        self.vars.truncate(mark);
        Ok(())
    }

    fn pipeline(&mut self, p: &Pipeline, dot: &Value) -> Result<Value, String> {
        let mut last: Option<Value> = None;
        for cmd in &p.cmds {
            last = Some(self.command(cmd, dot, last)?);
        }
        let v = last.unwrap_or(Value::Nil);
        if let Some(name) = p.decl.first().filter(|_| p.decl.len() == 1) {
            if p.assign {
                let slot = self.vars.iter_mut().rev().find(|(n, _)| n == name);
                match slot {
                    Some(s) => s.1 = v.clone(),
                    None => return Err(format!("undefined variable: ${name}")),
                }
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn command(&mut self, cmd: &[Arg], dot: &Value, piped: Option<Value>) -> Result<Value, String> {
        let Arg::Func(name) = &cmd[0] else {
            if cmd.len() > 1 || piped.is_some() {
                return Err(format!(
                    "can't give argument to non-function {}",
                    describe(&cmd[0])
                ));
            }
            return self.arg(&cmd[0], dot);
        };
        // `and` and `or` stop at the first argument that decides them, as in Go.
        if name == "and" || name == "or" {
            let mut v = Value::Nil;
            let n = cmd.len() - 1 + usize::from(piped.is_some());
            if n == 0 {
                return Err(format!("wrong number of args for {name}: want at least 1 got 0"));
            }
            for a in &cmd[1..] {
                v = self.arg(a, dot)?;
                if truth(&v) == (name == "or") {
                    return Ok(v);
                }
            }
            return Ok(piped.unwrap_or(v));
        }
        let mut args = Vec::with_capacity(cmd.len());
        for a in &cmd[1..] {
            args.push(self.arg(a, dot)?);
        }
        args.extend(piped);
        funcs::call(name, &args, self.ctx).map_err(|e| format!("error calling {name}: {e}"))
    }

    fn arg(&mut self, a: &Arg, dot: &Value) -> Result<Value, String> {
        match a {
            Arg::Field(f) => fields(dot.clone(), f),
            Arg::Var(name, f) => {
                let v = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n.strip_prefix('$').unwrap_or(n) == name || (name.is_empty() && n == "$"))
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| format!("undefined variable: ${name}"))?;
                fields(v, f)
            }
            Arg::Func(name) => {
                funcs::call(name, &[], self.ctx).map_err(|e| format!("error calling {name}: {e}"))
            }
            Arg::Str(s) => Ok(Value::Str(s.clone())),
            Arg::Int(n) => Ok(Value::Int(*n)),
            Arg::Float(f) => Ok(Value::Float(*f)),
            Arg::Bool(b) => Ok(Value::Bool(*b)),
            Arg::Nil => Err("nil is not a command".into()),
            Arg::Sub(p, f) => {
                let v = self.pipeline(p, dot)?;
                fields(v, f)
            }
        }
    }
}

fn describe(a: &Arg) -> String {
    match a {
        Arg::Field(f) => format!(".{}", f.join(".")),
        Arg::Var(n, f) if f.is_empty() => format!("${n}"),
        Arg::Var(n, f) => format!("${n}.{}", f.join(".")),
        Arg::Str(s) => format!("{s:?}"),
        Arg::Int(n) => n.to_string(),
        Arg::Float(f) => f.to_string(),
        Arg::Bool(b) => b.to_string(),
        _ => "value".into(),
    }
}

/// Reads `.A.B` from a value.
fn fields(mut v: Value, names: &[String]) -> Result<Value, String> {
    for n in names {
        v = match v {
            Value::Labels(m) => Value::Str(m.get(n).cloned().unwrap_or_default()),
            Value::Map(m) => m.get(n).cloned().unwrap_or(Value::Nil),
            Value::Sample(s) => match n.as_str() {
                "Labels" => Value::Labels(s.labels.clone()),
                "Value" => Value::Float(s.value),
                _ => return Err(format!("can't evaluate field {n} in type *template.sample")),
            },
            Value::Nil => return Err(format!("nil pointer evaluating interface {{}}.{n}")),
            other => {
                return Err(format!(
                    "can't evaluate field {n} in type {}",
                    fmt::type_name(&other)
                ))
            }
        };
    }
    Ok(v)
}

/// What an action prints: Go prints a missing map value as `<no value>`.
fn print(v: &Value) -> String {
    match v {
        Value::Nil => "<no value>".into(),
        other => fmt::print(other),
    }
}
