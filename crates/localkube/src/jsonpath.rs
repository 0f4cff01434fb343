//! A small JSONPath evaluator, for the `jsonPath` of CRD printer columns.
//!
//! Supported: `.a.b`, `a.b`, `$.a`, `{.a}`, `.a[0]`, `.a[-1]`, `.a[1:3]`, `.a[0,2]`, `.a[*]`,
//! `.*`, `..name` (recursive descent), `['a.b']` / `["a"]` / `['a','b']`, escaped dots
//! (`.labels.kubevirt\.io/vm`) and filters `[?(@.type=="Ready")]` with `==`, `!=`, `<`, `<=`,
//! `>`, `>=` or a bare existence test `[?(@.name)]`.

use serde_json::Value;

/// A parsed JSONPath expression.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct JsonPath(Vec<Step>);

impl JsonPath {
    pub(crate) fn parse(src: &str) -> Result<Self, String> {
        parse_path(src).map(JsonPath)
    }

    /// The values the path selects in `doc`, in document order.
    pub(crate) fn select<'a>(&self, doc: &'a Value) -> Vec<&'a Value> {
        eval_path(&self.0, doc, doc)
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    Fields(Vec<String>),
    Wildcard,
    Index(i64),
    Indices(Vec<i64>),
    Slice(Option<i64>, Option<i64>, Option<i64>),
    Filter(Box<Filter>),
    Descend,
}

#[derive(Clone, Debug, PartialEq)]
enum Operand {
    /// A path relative to the current element (`@`) or to the root (`$`).
    Path {
        from_root: bool,
        steps: Vec<Step>,
    },
    Literal(Value),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug, PartialEq)]
struct Filter {
    lhs: Operand,
    cmp: Option<(CmpOp, Operand)>,
}

/// Parses a JSONPath expression as used in `additionalPrinterColumns`.
fn parse_path(src: &str) -> Result<Vec<Step>, String> {
    let mut s = src.trim();
    if let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
        s = inner.trim();
    }
    if let Some(rest) = s.strip_prefix('$') {
        s = rest;
    }
    let chars: Vec<char> = s.chars().collect();
    let mut steps = Vec::new();
    let mut pos = 0;
    while pos < chars.len() {
        match chars[pos] {
            '.' => {
                pos += 1;
                if chars.get(pos) == Some(&'.') {
                    pos += 1;
                    steps.push(Step::Descend);
                    if chars.get(pos) == Some(&'[') {
                        continue;
                    }
                }
                let name = read_field_name(&chars, &mut pos);
                match name.as_str() {
                    "" if chars.get(pos) == Some(&'[') => {}
                    "" if pos >= chars.len() && steps.is_empty() => {}
                    "" => return Err(format!("empty field name in {src:?}")),
                    "*" => steps.push(Step::Wildcard),
                    _ => steps.push(Step::Field(name)),
                }
            }
            '[' => {
                pos += 1;
                steps.push(parse_bracket(&chars, &mut pos, src)?);
            }
            c if pos == 0 && !c.is_whitespace() => {
                let name = read_field_name(&chars, &mut pos);
                steps.push(Step::Field(name));
            }
            c => return Err(format!("unexpected {c:?} in {src:?}")),
        }
    }
    Ok(steps)
}

/// Reads a field name up to the next unescaped `.` or `[`; `\x` stands for `x`.
fn read_field_name(chars: &[char], pos: &mut usize) -> String {
    let mut name = String::new();
    while let Some(&c) = chars.get(*pos) {
        match c {
            '\\' if *pos + 1 < chars.len() => {
                name.push(chars[*pos + 1]);
                *pos += 2;
            }
            '.' | '[' => break,
            _ => {
                name.push(c);
                *pos += 1;
            }
        }
    }
    name.trim().to_string()
}

/// Reads a quoted string starting at the opening quote; returns its content.
fn read_quoted(chars: &[char], pos: &mut usize) -> Result<String, String> {
    let quote = chars[*pos];
    *pos += 1;
    let mut out = String::new();
    while let Some(&c) = chars.get(*pos) {
        *pos += 1;
        match c {
            '\\' if *pos < chars.len() => {
                out.push(chars[*pos]);
                *pos += 1;
            }
            c if c == quote => return Ok(out),
            c => out.push(c),
        }
    }
    Err("unterminated string".to_string())
}

fn skip_spaces(chars: &[char], pos: &mut usize) {
    while chars.get(*pos).is_some_and(|c| c.is_whitespace()) {
        *pos += 1;
    }
}

fn expect(chars: &[char], pos: &mut usize, want: char, src: &str) -> Result<(), String> {
    skip_spaces(chars, pos);
    if chars.get(*pos) == Some(&want) {
        *pos += 1;
        Ok(())
    } else {
        Err(format!("expected {want:?} at {} in {src:?}", *pos))
    }
}

/// Parses the inside of `[...]`; `pos` is just past the `[`.
fn parse_bracket(chars: &[char], pos: &mut usize, src: &str) -> Result<Step, String> {
    skip_spaces(chars, pos);
    match chars.get(*pos) {
        Some('?') => {
            *pos += 1;
            expect(chars, pos, '(', src)?;
            let start = *pos;
            let mut depth = 1;
            while depth > 0 {
                match chars.get(*pos) {
                    None => return Err(format!("unterminated filter in {src:?}")),
                    Some('\'' | '"') => {
                        read_quoted(chars, pos)?;
                    }
                    Some(c) => {
                        if *c == '(' {
                            depth += 1;
                        } else if *c == ')' {
                            depth -= 1;
                        }
                        *pos += 1;
                    }
                }
            }
            let body: String = chars[start..*pos - 1].iter().collect();
            expect(chars, pos, ']', src)?;
            Ok(Step::Filter(Box::new(parse_filter(&body)?)))
        }
        Some('\'' | '"') => {
            let mut names = Vec::new();
            loop {
                skip_spaces(chars, pos);
                if !matches!(chars.get(*pos), Some('\'' | '"')) {
                    return Err(format!("expected a quoted name in {src:?}"));
                }
                names.push(read_quoted(chars, pos)?);
                skip_spaces(chars, pos);
                match chars.get(*pos) {
                    Some(',') => *pos += 1,
                    Some(']') => {
                        *pos += 1;
                        break;
                    }
                    _ => return Err(format!("unterminated [...] in {src:?}")),
                }
            }
            Ok(if names.len() == 1 {
                Step::Field(names.remove(0))
            } else {
                Step::Fields(names)
            })
        }
        _ => {
            let start = *pos;
            while chars.get(*pos).is_some_and(|c| *c != ']') {
                *pos += 1;
            }
            if *pos >= chars.len() {
                return Err(format!("unterminated [...] in {src:?}"));
            }
            let body: String = chars[start..*pos].iter().collect();
            *pos += 1;
            parse_subscript(body.trim(), src)
        }
    }
}

fn parse_subscript(body: &str, src: &str) -> Result<Step, String> {
    let num = |s: &str| -> Result<Option<i64>, String> {
        let s = s.trim();
        if s.is_empty() {
            Ok(None)
        } else {
            s.parse::<i64>()
                .map(Some)
                .map_err(|_| format!("bad index {s:?} in {src:?}"))
        }
    };
    if body == "*" {
        return Ok(Step::Wildcard);
    }
    if body.contains(':') {
        let parts: Vec<&str> = body.split(':').collect();
        if parts.len() > 3 {
            return Err(format!("bad slice {body:?} in {src:?}"));
        }
        let step = match parts.get(2) {
            Some(p) => num(p)?,
            None => None,
        };
        return Ok(Step::Slice(num(parts[0])?, num(parts[1])?, step));
    }
    if body.contains(',') {
        let idx = body
            .split(',')
            .map(|p| num(p)?.ok_or_else(|| format!("empty index in {src:?}")))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Step::Indices(idx));
    }
    match num(body)? {
        Some(i) => Ok(Step::Index(i)),
        None => Err(format!("empty [] in {src:?}")),
    }
}

fn parse_filter(body: &str) -> Result<Filter, String> {
    // Find a comparison operator outside quoted strings.
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    let mut found: Option<(usize, usize, CmpOp)> = None;
    while i < chars.len() {
        match chars[i] {
            '\'' | '"' => {
                let mut p = i;
                read_quoted(&chars, &mut p)?;
                i = p;
                continue;
            }
            '=' | '!' | '<' | '>' => {
                let next_eq = chars.get(i + 1) == Some(&'=');
                let op = match (chars[i], next_eq) {
                    ('=', true) => Some(CmpOp::Eq),
                    ('!', true) => Some(CmpOp::Ne),
                    ('<', true) => Some(CmpOp::Le),
                    ('>', true) => Some(CmpOp::Ge),
                    ('<', false) => Some(CmpOp::Lt),
                    ('>', false) => Some(CmpOp::Gt),
                    _ => None,
                };
                if let Some(op) = op {
                    found = Some((i, if next_eq { 2 } else { 1 }, op));
                    break;
                }
            }
            _ => {}
        }
        i += 1;
    }
    match found {
        None => Ok(Filter {
            lhs: parse_operand(body)?,
            cmp: None,
        }),
        Some((at, len, op)) => {
            let lhs: String = chars[..at].iter().collect();
            let rhs: String = chars[at + len..].iter().collect();
            Ok(Filter {
                lhs: parse_operand(&lhs)?,
                cmp: Some((op, parse_operand(&rhs)?)),
            })
        }
    }
}

fn parse_operand(src: &str) -> Result<Operand, String> {
    let s = src.trim();
    if let Some(rest) = s.strip_prefix('@') {
        return Ok(Operand::Path {
            from_root: false,
            steps: parse_path(rest)?,
        });
    }
    if s.starts_with('$') {
        return Ok(Operand::Path {
            from_root: true,
            steps: parse_path(s)?,
        });
    }
    if s.starts_with('\'') || s.starts_with('"') {
        let chars: Vec<char> = s.chars().collect();
        let mut pos = 0;
        let lit = read_quoted(&chars, &mut pos)?;
        if pos != chars.len() {
            return Err(format!("unexpected text after string in {src:?}"));
        }
        return Ok(Operand::Literal(Value::String(lit)));
    }
    match s {
        "true" => return Ok(Operand::Literal(Value::Bool(true))),
        "false" => return Ok(Operand::Literal(Value::Bool(false))),
        "null" | "nil" => return Ok(Operand::Literal(Value::Null)),
        _ => {}
    }
    serde_json::from_str::<Value>(s)
        .ok()
        .filter(Value::is_number)
        .map(Operand::Literal)
        .ok_or_else(|| format!("unsupported filter operand {src:?}"))
}

/// Evaluates `steps` starting at `start`; `root` is the document for `$`.
fn eval_path<'a>(steps: &[Step], root: &'a Value, start: &'a Value) -> Vec<&'a Value> {
    let mut cur = vec![start];
    for step in steps {
        let mut next = Vec::new();
        for v in cur {
            apply_step(step, root, v, &mut next);
        }
        cur = next;
    }
    cur
}

fn children(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(m) => m.values().collect(),
        _ => Vec::new(),
    }
}

fn push_descendants<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(v);
    for c in children(v) {
        push_descendants(c, out);
    }
}

fn resolve_index(i: i64, len: usize) -> Option<usize> {
    let idx = if i < 0 {
        i64::try_from(len).ok()? + i
    } else {
        i
    };
    usize::try_from(idx).ok().filter(|&u| u < len)
}

fn apply_step<'a>(step: &Step, root: &'a Value, v: &'a Value, out: &mut Vec<&'a Value>) {
    match step {
        Step::Field(name) => out.extend(v.get(name.as_str())),
        Step::Fields(names) => out.extend(names.iter().filter_map(|n| v.get(n.as_str()))),
        Step::Wildcard => out.extend(children(v)),
        Step::Descend => push_descendants(v, out),
        Step::Index(i) => {
            if let Some(a) = v.as_array() {
                out.extend(resolve_index(*i, a.len()).map(|i| &a[i]));
            }
        }
        Step::Indices(idx) => {
            if let Some(a) = v.as_array() {
                out.extend(
                    idx.iter()
                        .filter_map(|i| resolve_index(*i, a.len()).map(|i| &a[i])),
                );
            }
        }
        Step::Slice(start, end, step) => {
            if let Some(a) = v.as_array() {
                let len = a.len() as i64;
                let clamp = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
                let from = start.map_or(0, clamp);
                let to = end.map_or(len, clamp);
                let by = step.filter(|s| *s > 0).unwrap_or(1);
                let mut i = from;
                while i < to {
                    out.push(&a[i as usize]);
                    i += by;
                }
            }
        }
        Step::Filter(f) => {
            for c in children(v) {
                if filter_matches(f, root, c) {
                    out.push(c);
                }
            }
        }
    }
}

fn operand_value<'a>(op: &'a Operand, root: &'a Value, cur: &'a Value) -> Option<&'a Value> {
    match op {
        Operand::Literal(v) => Some(v),
        Operand::Path { from_root, steps } => {
            let start = if *from_root { root } else { cur };
            eval_path(steps, root, start).into_iter().next()
        }
    }
}

fn filter_matches(f: &Filter, root: &Value, cur: &Value) -> bool {
    let Some(lhs) = operand_value(&f.lhs, root, cur) else {
        return false;
    };
    let Some((op, rhs)) = &f.cmp else {
        return !lhs.is_null() && lhs != &Value::Bool(false);
    };
    let Some(rhs) = operand_value(rhs, root, cur) else {
        return false;
    };
    let ordering = match (lhs, rhs) {
        (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (a, b) if a == b => Some(std::cmp::Ordering::Equal),
        _ => None,
    };
    use std::cmp::Ordering::{Equal, Greater, Less};
    match op {
        CmpOp::Eq => ordering == Some(Equal),
        CmpOp::Ne => ordering != Some(Equal),
        CmpOp::Lt => ordering == Some(Less),
        CmpOp::Le => matches!(ordering, Some(Less | Equal)),
        CmpOp::Gt => ordering == Some(Greater),
        CmpOp::Ge => matches!(ordering, Some(Greater | Equal)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval_str(path: &str, doc: &Value) -> Vec<Value> {
        let steps = parse_path(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        eval_path(&steps, doc, doc).into_iter().cloned().collect()
    }

    #[test]
    fn jsonpath_basics() {
        let doc = json!({
            "a": {"b": [10, 20, 30, 40], "c.d": "dotted", "e": {"x": 1, "y": 2}},
            "items": [
                {"name": "one", "n": 1, "ok": true, "meta": {"name": "m1"}},
                {"name": "two", "n": 2, "ok": false},
                {"name": "three", "n": 3},
            ],
        });
        assert_eq!(eval_str(".a.b[1]", &doc), [json!(20)]);
        assert_eq!(eval_str("a.b[1]", &doc), [json!(20)]);
        assert_eq!(eval_str("{.a.b[-1]}", &doc), [json!(40)]);
        assert_eq!(eval_str("$.a.b[1:3]", &doc), [json!(20), json!(30)]);
        assert_eq!(eval_str(".a.b[::2]", &doc), [json!(10), json!(30)]);
        assert_eq!(eval_str(".a.b[-2:]", &doc), [json!(30), json!(40)]);
        assert_eq!(eval_str(".a.b[0,3]", &doc), [json!(10), json!(40)]);
        assert_eq!(eval_str(".a.b[9]", &doc), Vec::<Value>::new());
        assert_eq!(eval_str(".a['c.d']", &doc), [json!("dotted")]);
        assert_eq!(eval_str(".a[\"c.d\"]", &doc), [json!("dotted")]);
        assert_eq!(eval_str(".a.c\\.d", &doc), [json!("dotted")]);
        assert_eq!(eval_str(".a.e.*", &doc), [json!(1), json!(2)]);
        assert_eq!(eval_str(".a.e['y','x']", &doc), [json!(2), json!(1)]);
        assert_eq!(
            eval_str(".items[*].name", &doc),
            [json!("one"), json!("two"), json!("three")]
        );
        assert_eq!(eval_str("..name", &doc).len(), 4);
        let whole = eval_str(".", &doc);
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0], doc);
        assert_eq!(eval_str(".missing.deeper", &doc), Vec::<Value>::new());
    }

    #[test]
    fn jsonpath_filters() {
        let doc = json!({"items": [
            {"name": "one", "n": 1, "ok": true, "kind": "A"},
            {"name": "two", "n": 2, "ok": false, "kind": "B"},
            {"name": "th)ree", "n": 3, "kind": "A"},
        ], "want": "B"});
        let names = |p: &str| -> Vec<Value> { eval_str(p, &doc) };
        assert_eq!(names(".items[?(@.kind==\"A\")].n"), [json!(1), json!(3)]);
        assert_eq!(names(".items[?(@.kind == 'B')].name"), [json!("two")]);
        assert_eq!(names(".items[?(@.kind!='A')].n"), [json!(2)]);
        assert_eq!(names(".items[?(@.n>1)].n"), [json!(2), json!(3)]);
        assert_eq!(names(".items[?(@.n<=2)].n"), [json!(1), json!(2)]);
        assert_eq!(names(".items[?(@.n>=3)].name"), [json!("th)ree")]);
        assert_eq!(names(".items[?(@.n<2)].n"), [json!(1)]);
        assert_eq!(names(".items[?(@.ok)].name"), [json!("one")]);
        assert_eq!(names(".items[?(@.ok==false)].n"), [json!(2)]);
        assert_eq!(names(".items[?(@.name=='th)ree')].n"), [json!(3)]);
        assert_eq!(names(".items[?(@.kind==$.want)].n"), [json!(2)]);
        assert_eq!(names(".items[?(@.nope==\"x\")].n"), Vec::<Value>::new());
    }

    #[test]
    fn jsonpath_rejects_malformed_paths() {
        for bad in [
            ".a[",
            ".a[?(@.x==1]",
            ".a[x]",
            ".a..",
            ".a['x'",
            "..",
            ".a[?(@.x==foo)]",
        ] {
            assert!(parse_path(bad).is_err(), "{bad} should not parse");
        }
    }
}
