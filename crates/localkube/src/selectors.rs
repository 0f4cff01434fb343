//! Kubernetes label and field selectors.
//!
//! Label selectors follow the grammar and semantics of
//! `k8s.io/apimachinery/pkg/labels`: comma-separated requirements of the forms
//! `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, `k>1` and
//! `k<1`. A `!=` or `notin` requirement matches objects that lack the key.
//!
//! Field selectors follow `k8s.io/apimachinery/pkg/fields`: comma-separated
//! `k=v`, `k==v` and `k!=v` terms whose values may use the escapes `\,`, `\=`
//! and `\\`; a field the object does not have reads as the empty string.
//!
//! This module depends only on `std`, `serde_json` and `thiserror`.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

/// Maximum length of a label value and of the name part of a label key.
const LABEL_MAX_LEN: usize = 63;
/// Maximum length of the DNS-subdomain prefix of a label key.
const DNS_SUBDOMAIN_MAX_LEN: usize = 253;

const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const DNS_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// Errors from parsing or converting selectors. The messages follow the
/// wording kube-apiserver uses for the same mistakes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A label selector that does not follow the grammar, for example
    /// `found ')', expected: ',' or 'end of string'`.
    #[error("{0}")]
    LabelSyntax(String),
    /// A label requirement that could not be parsed or is not valid, for
    /// example an invalid key or value.
    #[error("unable to parse requirement: {0}")]
    Requirement(String),
    /// A `metav1.LabelSelector` object that cannot be converted.
    #[error("{0}")]
    InvalidLabelSelector(String),
    /// A field-selector term without a recognised operator.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldTerm {
        /// The whole selector.
        selector: String,
        /// The term that could not be understood.
        term: String,
    },
    /// A backslash followed by something other than `\`, `,` or `=`.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    FieldEscape(String),
    /// A `,` or `=` in a field-selector value that is not escaped.
    #[error("invalid field selector: unescaped character in value: {0:?}")]
    FieldUnescaped(char),
}

// ---------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------

/// The operator of one label requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelOperator {
    /// `k=v`
    Equals,
    /// `k==v`
    DoubleEquals,
    /// `k!=v` (also matches when the key is absent)
    NotEquals,
    /// `k in (a,b)`
    In,
    /// `k notin (a,b)` (also matches when the key is absent)
    NotIn,
    /// `k`
    Exists,
    /// `!k`
    DoesNotExist,
    /// `k>5`: the label is an integer greater than the value
    GreaterThan,
    /// `k<5`: the label is an integer less than the value
    LessThan,
}

/// One requirement of a label selector. `values` is sorted and holds no
/// duplicates; it is empty for `Exists` and `DoesNotExist`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRequirement {
    pub key: String,
    pub operator: LabelOperator,
    pub values: Vec<String>,
}

impl LabelRequirement {
    /// Whether this requirement holds for the labels that `get` reads.
    pub fn matches_with(&self, get: &dyn Fn(&str) -> Option<String>) -> bool {
        let actual = get(&self.key);
        match self.operator {
            LabelOperator::Equals | LabelOperator::DoubleEquals | LabelOperator::In => {
                actual.is_some_and(|v| self.values.contains(&v))
            }
            LabelOperator::NotEquals | LabelOperator::NotIn => {
                actual.is_none_or(|v| !self.values.contains(&v))
            }
            LabelOperator::Exists => actual.is_some(),
            LabelOperator::DoesNotExist => actual.is_none(),
            LabelOperator::GreaterThan | LabelOperator::LessThan => {
                let Some(actual) = actual else {
                    return false;
                };
                let Ok(have) = actual.parse::<i64>() else {
                    return false;
                };
                let [want] = self.values.as_slice() else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if self.operator == LabelOperator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for LabelRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values = self.values.join(",");
        match self.operator {
            LabelOperator::Equals => write!(f, "{}={}", self.key, values),
            LabelOperator::DoubleEquals => write!(f, "{}=={}", self.key, values),
            LabelOperator::NotEquals => write!(f, "{}!={}", self.key, values),
            LabelOperator::In => write!(f, "{} in ({})", self.key, values),
            LabelOperator::NotIn => write!(f, "{} notin ({})", self.key, values),
            LabelOperator::Exists => write!(f, "{}", self.key),
            LabelOperator::DoesNotExist => write!(f, "!{}", self.key),
            LabelOperator::GreaterThan => write!(f, "{}>{}", self.key, values),
            LabelOperator::LessThan => write!(f, "{}<{}", self.key, values),
        }
    }
}

/// A parsed label selector: a conjunction of requirements, kept sorted by key.
/// The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Whether the selector has no requirements (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[LabelRequirement] {
        &self.requirements
    }

    /// Whether an object with these labels (`metadata.labels`, whose values
    /// are JSON strings) is selected.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        self.matches_with(|key| labels.get(key).map(label_value_text))
    }

    /// Whether the labels that `get` reads are selected; `get` returns
    /// `None` for a label the object does not have.
    pub fn matches_with(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| r.matches_with(&get))
    }

    fn from_requirements(mut requirements: Vec<LabelRequirement>) -> Self {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Self { requirements }
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical form kube-apiserver prints, e.g. `app=web,tier in (a,b)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

fn label_value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Parses a label selector as given in the `labelSelector` query parameter.
/// The empty (or all-blank) string selects everything.
pub fn parse_label_selector(s: &str) -> Result<LabelSelector, SelectorError> {
    let mut parser = Parser {
        tokens: lex(s),
        pos: 0,
    };
    let requirements = parser.parse()?;
    Ok(LabelSelector::from_requirements(requirements))
}

/// Converts a `metav1.LabelSelector` (`matchLabels` and `matchExpressions`)
/// into a [`LabelSelector`]. `null` and `{}` select everything.
pub fn label_selector_from_object(sel: &Value) -> Result<LabelSelector, SelectorError> {
    let obj = match sel {
        Value::Null => return Ok(LabelSelector::everything()),
        Value::Object(o) => o,
        other => {
            return Err(SelectorError::InvalidLabelSelector(format!(
                "a label selector must be an object, not {other}"
            )));
        }
    };
    let invalid = SelectorError::InvalidLabelSelector;
    let mut requirements = Vec::new();
    match obj.get("matchLabels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(labels)) => {
            for (k, v) in labels {
                let Value::String(v) = v else {
                    return Err(invalid(format!(
                        "matchLabels[{k}]: Invalid value: {v}: must be a string"
                    )));
                };
                requirements.push(
                    new_requirement(k, LabelOperator::Equals, vec![v.clone()]).map_err(invalid)?,
                );
            }
        }
        Some(other) => {
            return Err(invalid(format!(
                "matchLabels: Invalid value: {other}: must be an object"
            )));
        }
    }
    match obj.get("matchExpressions") {
        None | Some(Value::Null) => {}
        Some(Value::Array(exprs)) => {
            for expr in exprs {
                requirements.push(expression_requirement(expr).map_err(invalid)?);
            }
        }
        Some(other) => {
            return Err(invalid(format!(
                "matchExpressions: Invalid value: {other}: must be a list"
            )));
        }
    }
    Ok(LabelSelector::from_requirements(requirements))
}

fn expression_requirement(expr: &Value) -> Result<LabelRequirement, String> {
    let key = expr.get("key").and_then(Value::as_str).unwrap_or_default();
    let op_name = expr
        .get("operator")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let operator = match op_name {
        "In" => LabelOperator::In,
        "NotIn" => LabelOperator::NotIn,
        "Exists" => LabelOperator::Exists,
        "DoesNotExist" => LabelOperator::DoesNotExist,
        other => return Err(format!("{other:?} is not a valid label selector operator")),
    };
    let values = match expr.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(vals)) => vals
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!("values: Invalid value: {other}: must be a string")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => return Err(format!("values: Invalid value: {other}: must be a list")),
    };
    new_requirement(key, operator, values)
}

/// Builds a requirement with the validation of `labels.NewRequirement`.
fn new_requirement(
    key: &str,
    operator: LabelOperator,
    values: Vec<String>,
) -> Result<LabelRequirement, String> {
    let mut errs = Vec::new();
    if let Err(e) = validate_label_key(key, "key") {
        errs.push(e);
    }
    match operator {
        LabelOperator::In | LabelOperator::NotIn => {
            if values.is_empty() {
                errs.push(
                    "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
                        .to_string(),
                );
            }
        }
        LabelOperator::Equals | LabelOperator::DoubleEquals | LabelOperator::NotEquals => {
            if values.len() != 1 {
                errs.push(format!(
                    "values: Invalid value: {values:?}: exact-match compatibility requires one single value"
                ));
            }
        }
        LabelOperator::Exists | LabelOperator::DoesNotExist => {
            if !values.is_empty() {
                errs.push(format!(
                    "values: Invalid value: {values:?}: values set must be empty for exists and does not exist"
                ));
            }
        }
        LabelOperator::GreaterThan | LabelOperator::LessThan => {
            if values.len() != 1 {
                errs.push(format!(
                    "values: Invalid value: {values:?}: for 'Gt', 'Lt' operators, exactly one value is required"
                ));
            }
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errs.push(format!(
                        "values[{i}]: Invalid value: {v:?}: for 'Gt', 'Lt' operators, the value must be an integer"
                    ));
                }
            }
        }
    }
    for (i, v) in values.iter().enumerate() {
        let problems = label_value_errors(v);
        if !problems.is_empty() {
            errs.push(format!(
                "values[{i}][{key}]: Invalid value: {v:?}: {}",
                problems.join("; ")
            ));
        }
    }
    if !errs.is_empty() {
        return Err(aggregate(errs));
    }
    let values: BTreeSet<String> = values.into_iter().collect();
    Ok(LabelRequirement {
        key: key.to_string(),
        operator,
        values: values.into_iter().collect(),
    })
}

fn aggregate(mut errs: Vec<String>) -> String {
    if errs.len() == 1 {
        errs.remove(0)
    } else {
        format!("[{}]", errs.join(", "))
    }
}

fn validate_label_key(key: &str, field: &str) -> Result<(), String> {
    let problems = qualified_name_errors(key);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{field}: Invalid value: {key:?}: {}",
            problems.join("; ")
        ))
    }
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// A lowercase RFC 1123 subdomain: dot-separated labels of `[a-z0-9-]` that
/// start and end with `[a-z0-9]`.
fn is_dns1123_subdomain(s: &str) -> bool {
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        match (b.first(), b.last()) {
            (Some(first), Some(last)) => {
                (first.is_ascii_lowercase() || first.is_ascii_digit())
                    && (last.is_ascii_lowercase() || last.is_ascii_digit())
                    && b.iter()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            }
            _ => false,
        }
    };
    s.split('.').all(label_ok)
}

/// The problems `validation.IsQualifiedName` reports for a label key.
fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > DNS_SUBDOMAIN_MAX_LEN {
                    errs.push(format!(
                        "prefix part must be no more than {DNS_SUBDOMAIN_MAX_LEN} characters"
                    ));
                }
                if !is_dns1123_subdomain(prefix) {
                    errs.push(format!("prefix part {DNS_SUBDOMAIN_MSG}"));
                }
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > LABEL_MAX_LEN {
        errs.push(format!(
            "name part must be no more than {LABEL_MAX_LEN} characters"
        ));
    }
    if !is_qualified_name_part(name) {
        errs.push(format!("name part {QUALIFIED_NAME_MSG}"));
    }
    errs
}

/// The problems `validation.IsValidLabelValue` reports.
fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_MAX_LEN {
        errs.push(format!("must be no more than {LABEL_MAX_LEN} characters"));
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errs.push(LABEL_VALUE_MSG.to_string());
    }
    errs
}

/// Whether `key` is a valid label key (optional DNS-subdomain prefix and `/`,
/// then a name of at most 63 characters).
#[cfg(test)]
pub fn is_valid_label_key(key: &str) -> bool {
    qualified_name_errors(key).is_empty()
}

/// Whether `value` is a valid label value (at most 63 characters, possibly
/// empty).
#[cfg(test)]
pub fn is_valid_label_value(value: &str) -> bool {
    label_value_errors(value).is_empty()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    In,
    NotIn,
    Not,
    Equals,
    DoubleEquals,
    NotEquals,
    GreaterThan,
    LessThan,
    OpenPar,
    ClosedPar,
    Comma,
    End,
}

impl Token {
    fn literal(&self) -> &str {
        match self {
            Token::Ident(s) => s,
            Token::In => "in",
            Token::NotIn => "notin",
            Token::Not => "!",
            Token::Equals => "=",
            Token::DoubleEquals => "==",
            Token::NotEquals => "!=",
            Token::GreaterThan => ">",
            Token::LessThan => "<",
            Token::OpenPar => "(",
            Token::ClosedPar => ")",
            Token::Comma => ",",
            Token::End => "",
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

/// Splits a label selector into tokens; the list always ends with `End`.
fn lex(s: &str) -> Vec<Token> {
    let chars: Vec<char> = s.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if is_special(c) {
            let next = chars.get(i + 1).copied();
            let (tok, len) = match (c, next) {
                ('=', Some('=')) => (Token::DoubleEquals, 2),
                ('!', Some('=')) => (Token::NotEquals, 2),
                ('=', _) => (Token::Equals, 1),
                ('!', _) => (Token::Not, 1),
                ('(', _) => (Token::OpenPar, 1),
                (')', _) => (Token::ClosedPar, 1),
                (',', _) => (Token::Comma, 1),
                ('>', _) => (Token::GreaterThan, 1),
                _ => (Token::LessThan, 1),
            };
            tokens.push(tok);
            i += len;
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !is_special(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            tokens.push(match word.as_str() {
                "in" => Token::In,
                "notin" => Token::NotIn,
                _ => Token::Ident(word),
            });
        }
    }
    tokens.push(Token::End);
    tokens
}

/// Where the parser is: reading a key and operator, or reading values (where
/// the keywords `in` and `notin` are plain identifiers).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn lookahead(&self, ctx: Context) -> Token {
        let tok = self.tokens[self.pos].clone();
        match (ctx, tok) {
            (Context::Values, Token::In) => Token::Ident("in".to_string()),
            (Context::Values, Token::NotIn) => Token::Ident("notin".to_string()),
            (_, tok) => tok,
        }
    }

    fn consume(&mut self, ctx: Context) -> Token {
        let tok = self.lookahead(ctx);
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
        tok
    }

    fn parse(&mut self) -> Result<Vec<LabelRequirement>, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            match self.lookahead(Context::Values) {
                Token::Ident(_) | Token::Not => {
                    let r = self
                        .parse_requirement()
                        .map_err(SelectorError::Requirement)?;
                    requirements.push(r);
                    match self.consume(Context::Values) {
                        Token::End => return Ok(requirements),
                        Token::Comma => {
                            let next = self.lookahead(Context::Values);
                            if !matches!(next, Token::Ident(_) | Token::Not) {
                                return Err(SelectorError::LabelSyntax(format!(
                                    "found '{}', expected: identifier after ','",
                                    next.literal()
                                )));
                            }
                        }
                        other => {
                            return Err(SelectorError::LabelSyntax(format!(
                                "found '{}', expected: ',' or 'end of string'",
                                other.literal()
                            )));
                        }
                    }
                }
                Token::End => return Ok(requirements),
                other => {
                    return Err(SelectorError::LabelSyntax(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        other.literal()
                    )));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<LabelRequirement, String> {
        let (key, inferred) = self.parse_key_and_infer_operator()?;
        if let Some(op) = inferred {
            return new_requirement(&key, op, Vec::new());
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            LabelOperator::In | LabelOperator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        new_requirement(&key, operator, values)
    }

    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<LabelOperator>), String> {
        let mut operator = None;
        let mut tok = self.consume(Context::Values);
        if tok == Token::Not {
            operator = Some(LabelOperator::DoesNotExist);
            tok = self.consume(Context::Values);
        }
        let Token::Ident(key) = tok else {
            return Err(format!("found '{}', expected: identifier", tok.literal()));
        };
        validate_label_key(&key, "key")?;
        if operator.is_none()
            && matches!(self.lookahead(Context::Values), Token::End | Token::Comma)
        {
            operator = Some(LabelOperator::Exists);
        }
        Ok((key, operator))
    }

    fn parse_operator(&mut self) -> Result<LabelOperator, String> {
        match self.consume(Context::KeyAndOperator) {
            Token::In => Ok(LabelOperator::In),
            Token::NotIn => Ok(LabelOperator::NotIn),
            Token::Equals => Ok(LabelOperator::Equals),
            Token::DoubleEquals => Ok(LabelOperator::DoubleEquals),
            Token::NotEquals => Ok(LabelOperator::NotEquals),
            Token::GreaterThan => Ok(LabelOperator::GreaterThan),
            Token::LessThan => Ok(LabelOperator::LessThan),
            other => Err(format!(
                "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                other.literal()
            )),
        }
    }

    /// `( a, b, ... )`; empty entries stand for the empty value.
    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let tok = self.consume(Context::Values);
        if tok != Token::OpenPar {
            return Err(format!("found '{}' expected: '('", tok.literal()));
        }
        match self.lookahead(Context::Values) {
            Token::Ident(_) | Token::Comma => {
                let values = self.parse_identifier_list()?;
                let close = self.consume(Context::Values);
                if close != Token::ClosedPar {
                    return Err(format!("found '{}', expected: ')'", close.literal()));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(vec![String::new()])
            }
            other => Err(format!(
                "found '{}', expected: ',', ')' or identifier",
                other.literal()
            )),
        }
    }

    fn parse_identifier_list(&mut self) -> Result<Vec<String>, String> {
        let mut values: Vec<String> = Vec::new();
        loop {
            match self.consume(Context::Values) {
                Token::Ident(v) => {
                    values.push(v);
                    match self.lookahead(Context::Values) {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values),
                        other => {
                            return Err(format!(
                                "found '{}', expected: ',' or ')'",
                                other.literal()
                            ));
                        }
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    match self.lookahead(Context::Values) {
                        Token::ClosedPar => {
                            values.push(String::new());
                            return Ok(values);
                        }
                        Token::Comma => {
                            self.consume(Context::Values);
                            values.push(String::new());
                        }
                        _ => {}
                    }
                }
                other => {
                    return Err(format!(
                        "found '{}', expected: ',', or identifier",
                        other.literal()
                    ));
                }
            }
        }
    }

    /// The single value after `=`, `==`, `!=`, `>` or `<`; nothing before a
    /// comma or the end means the empty value.
    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        if matches!(self.lookahead(Context::Values), Token::End | Token::Comma) {
            return Ok(vec![String::new()]);
        }
        match self.consume(Context::Values) {
            Token::Ident(v) => Ok(vec![v]),
            other => Err(format!("found '{}', expected: identifier", other.literal())),
        }
    }
}

// ---------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------

/// The operator of a field requirement (`=` and `==` are the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOp {
    Equals,
    NotEquals,
}

impl fmt::Display for FieldOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldOp::Equals => "=",
            FieldOp::NotEquals => "!=",
        })
    }
}

/// One `key=value` or `key!=value` term; `value` is unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub key: String,
    pub op: FieldOp,
    pub value: String,
}

impl FieldRequirement {
    /// Whether a field whose value is `actual` satisfies this term.
    pub fn matches(&self, actual: &str) -> bool {
        match self.op {
            FieldOp::Equals => actual == self.value,
            FieldOp::NotEquals => actual != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            self.key,
            self.op,
            escape_field_value(&self.value)
        )
    }
}

/// A parsed field selector: a conjunction of terms. The empty selector
/// matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Whether the selector has no terms.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The terms, in the order Kubernetes keeps them (sorted by their text).
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// The field keys the selector mentions (a key may repeat).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.requirements.iter().map(|r| r.key.as_str())
    }

    /// The value `key` must equal, when the selector has a `key=value` term
    /// (Kubernetes' `RequiresExactMatch`).
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.key == key && r.op == FieldOp::Equals)
            .map(|r| r.value.as_str())
    }

    /// Whether an object is selected; `lookup` returns the value of a field,
    /// and a field it returns `None` for reads as the empty string.
    pub fn matches(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let actual = lookup(&r.key).unwrap_or_default();
            r.matches(&actual)
        })
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Parses a field selector as given in the `fieldSelector` query parameter.
pub fn parse_field_selector(s: &str) -> Result<FieldSelector, SelectorError> {
    let mut terms = split_field_terms(s);
    terms.sort_unstable();
    let mut requirements = Vec::new();
    for term in terms {
        if term.is_empty() {
            continue;
        }
        let Some((key, op, raw)) = split_field_term(term) else {
            return Err(SelectorError::FieldTerm {
                selector: s.to_string(),
                term: term.to_string(),
            });
        };
        requirements.push(FieldRequirement {
            key: key.to_string(),
            op,
            value: unescape_field_value(raw)?,
        });
    }
    Ok(FieldSelector { requirements })
}

/// Splits on commas that are not escaped by a backslash.
fn split_field_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits a term at the first operator; the key cannot contain escapes.
fn split_field_term(term: &str) -> Option<(&str, FieldOp, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        if let Some(value) = rest.strip_prefix("!=") {
            return Some((&term[..i], FieldOp::NotEquals, value));
        }
        if let Some(value) = rest.strip_prefix("==") {
            return Some((&term[..i], FieldOp::Equals, value));
        }
        if let Some(value) = rest.strip_prefix('=') {
            return Some((&term[..i], FieldOp::Equals, value));
        }
    }
    None
}

fn unescape_field_value(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            match c {
                '\\' | ',' | '=' => out.push(c),
                other => return Err(SelectorError::FieldEscape(format!("\\{other}"))),
            }
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' | '=' => return Err(SelectorError::FieldUnescaped(c)),
            other => out.push(other),
        }
    }
    if escaped {
        return Err(SelectorError::FieldEscape("\\".to_string()));
    }
    Ok(out)
}

/// Escapes `\`, `,` and `=` in a field-selector value.
pub fn escape_field_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn label_selectors_parse_to_canonical_form() {
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("   ", ""),
            ("x=a", "x=a"),
            ("x==a", "x==a"),
            ("x!=a", "x!=a"),
            ("x", "x"),
            ("!x", "!x"),
            ("  ! x  ", "!x"),
            ("x=", "x="),
            ("x= ,y=b", "x=,y=b"),
            ("x>1", "x>1"),
            ("x<1", "x<1"),
            ("x in (a)", "x in (a)"),
            ("x in (b,a,b)", "x in (a,b)"),
            ("x in(a, b)", "x in (a,b)"),
            ("x notin (a,b)", "x notin (a,b)"),
            ("x in ()", "x in ()"),
            ("x in (,a)", "x in (,a)"),
            ("x in (a,)", "x in (,a)"),
            ("x in (a,,b)", "x in (,a,b)"),
            ("x in (in,notin)", "x in (in,notin)"),
            ("in in (in)", "in in (in)"),
            ("notin=in", "notin=in"),
            ("z=a,y=b,x=c", "x=c,y=b,z=a"),
            (" x = a , y != b ", "x=a,y!=b"),
            ("example.com/app=web", "example.com/app=web"),
            ("a.b-c_d=E.F-G_H", "a.b-c_d=E.F-G_H"),
            (
                "app.kubernetes.io/name in (x, y),!canary",
                "app.kubernetes.io/name in (x,y),!canary",
            ),
        ];
        for (input, want) in cases {
            let sel = parse_label_selector(input)
                .unwrap_or_else(|e| panic!("{input:?} should parse, got {e}"));
            assert_eq!(sel.to_string(), *want, "input {input:?}");
            assert_eq!(sel.is_empty(), want.is_empty(), "input {input:?}");
        }
    }

    #[test]
    fn invalid_label_selectors_are_rejected() {
        let long_name = "a".repeat(64);
        let long_value = format!("x={}", "v".repeat(64));
        let cases: Vec<(&str, &str)> = vec![
            ("x=a=b", "found '=', expected: ',' or 'end of string'"),
            ("x=a b", "found 'b', expected: ',' or 'end of string'"),
            ("x=a,", "found '', expected: identifier after ','"),
            ("x=a,,y=b", "found ',', expected: identifier after ','"),
            (
                ",x",
                "found ',', expected: !, identifier, or 'end of string'",
            ),
            (
                "=a",
                "found '=', expected: !, identifier, or 'end of string'",
            ),
            (
                "(x)",
                "found '(', expected: !, identifier, or 'end of string'",
            ),
            (
                "x in a",
                "unable to parse requirement: found 'a' expected: '('",
            ),
            (
                "x in (a",
                "unable to parse requirement: found '', expected: ',' or ')'",
            ),
            (
                "x in (a b)",
                "unable to parse requirement: found 'b', expected: ',' or ')'",
            ),
            (
                "x in (=)",
                "unable to parse requirement: found '=', expected: ',', ')' or identifier",
            ),
            (
                "x notin",
                "unable to parse requirement: found '' expected: '('",
            ),
            (
                "x y",
                "unable to parse requirement: found 'y', expected: in, notin, =, ==, !=, gt, lt",
            ),
            (
                "x (a)",
                "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt",
            ),
            ("!x=a", "found '=', expected: ',' or 'end of string'"),
            (
                "!",
                "unable to parse requirement: found '', expected: identifier",
            ),
            (
                "!=a",
                "found '!=', expected: !, identifier, or 'end of string'",
            ),
            (
                "x=(a)",
                "unable to parse requirement: found '(', expected: identifier",
            ),
            ("x>a", "the value must be an integer"),
            ("x<", "the value must be an integer"),
            ("x=a,y", ""),
            ("a b=c", "found 'b', expected: in, notin, =, ==, !=, gt, lt"),
            ("-x=a", "name part must consist of alphanumeric characters"),
            ("x.=a", "name part must consist of alphanumeric characters"),
            ("/x=a", "prefix part must be non-empty"),
            ("x/=a", "name part must be non-empty"),
            ("a/b/c=d", "a qualified name must consist of"),
            (
                "Example.com/x=a",
                "prefix part a lowercase RFC 1123 subdomain",
            ),
            ("x=-a", "a valid label must be an empty string"),
            ("x=a:b", "a valid label must be an empty string"),
            ("x in (ok,-bad)", "values[1][x]: Invalid value: \"-bad\""),
            ("ключ=a", "name part must consist of"),
        ];
        for (input, want) in cases {
            if want.is_empty() {
                assert!(
                    parse_label_selector(input).is_ok(),
                    "{input:?} should parse"
                );
                continue;
            }
            let err = parse_label_selector(input)
                .expect_err(&format!("{input:?} should fail"))
                .to_string();
            assert!(err.contains(want), "{input:?}: got {err:?}, want {want:?}");
        }
        let err = parse_label_selector(&format!("{long_name}=a"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("name part must be no more than 63 characters"),
            "{err}"
        );
        assert!(parse_label_selector(&format!("{}=a", "a".repeat(63))).is_ok());
        let err = parse_label_selector(&long_value).unwrap_err().to_string();
        assert!(err.contains("must be no more than 63 characters"), "{err}");
        assert!(parse_label_selector(&format!("x={}", "v".repeat(63))).is_ok());
        let long_prefix = format!("{}/x=a", "p".repeat(254));
        let err = parse_label_selector(&long_prefix).unwrap_err().to_string();
        assert!(
            err.contains("prefix part must be no more than 253 characters"),
            "{err}"
        );
    }

    #[test]
    fn label_selector_errors_start_like_kubernetes() {
        let err = parse_label_selector("x in a").unwrap_err();
        assert!(matches!(err, SelectorError::Requirement(_)));
        assert!(err.to_string().starts_with("unable to parse requirement: "));
        let err = parse_label_selector("x=a,").unwrap_err();
        assert!(matches!(err, SelectorError::LabelSyntax(_)));
    }

    #[test]
    fn label_selector_matching() {
        let l = labels(json!({"app": "web", "tier": "front", "n": "5", "empty": ""}));
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("app!=web", false),
            ("missing!=x", true),
            ("app in (web,db)", true),
            ("app in (db)", false),
            ("missing in (a)", false),
            ("app notin (db)", true),
            ("app notin (web)", false),
            ("missing notin (a)", true),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
            ("n>4", true),
            ("n>5", false),
            ("n<6", true),
            ("n<5", false),
            ("app>1", false),
            ("missing>1", false),
            ("empty=", true),
            ("empty", true),
            ("missing=", false),
            ("empty in ()", true),
            ("app in ()", false),
            ("missing!=", true),
        ];
        for (sel, want) in cases {
            let parsed = parse_label_selector(sel).unwrap();
            assert_eq!(parsed.matches(&l), *want, "selector {sel:?}");
        }
        // Objects without labels.
        let none = Map::new();
        assert!(parse_label_selector("a!=b").unwrap().matches(&none));
        assert!(!parse_label_selector("a").unwrap().matches(&none));
        assert!(parse_label_selector("").unwrap().matches(&none));
    }

    #[test]
    fn matches_with_closure() {
        let sel = parse_label_selector("a=1,!b").unwrap();
        assert!(sel.matches_with(|k| (k == "a").then(|| "1".to_string())));
        assert!(!sel.matches_with(|_| Some("1".to_string())));
    }

    #[test]
    fn label_selector_objects() {
        let sel = label_selector_from_object(&Value::Null).unwrap();
        assert!(sel.is_empty());
        let sel = label_selector_from_object(&json!({})).unwrap();
        assert!(sel.is_empty());
        let sel = label_selector_from_object(&json!({"matchLabels": {}, "matchExpressions": []}))
            .unwrap();
        assert!(sel.is_empty());

        let sel = label_selector_from_object(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "ready", "operator": "Exists"},
                {"key": "canary", "operator": "DoesNotExist", "values": []}
            ]
        }))
        .unwrap();
        assert_eq!(
            sel.to_string(),
            "app=web,!canary,env notin (prod),ready,tier in (a,b)"
        );
        assert!(sel.matches(&labels(json!({"app": "web", "tier": "a", "ready": "true"}))));
        assert!(!sel.matches(&labels(json!({"app": "web", "tier": "c", "ready": "true"}))));
        assert!(!sel.matches(&labels(
            json!({"app": "web", "tier": "a", "ready": "", "canary": "1"})
        )));
        assert!(!sel.matches(&labels(
            json!({"app": "web", "tier": "a", "ready": "1", "env": "prod"})
        )));

        let bad = [
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}),
                "\"Equals\" is not a valid label selector operator",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
                "values set can't be empty",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
                "values set can't be empty",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
                "values set must be empty",
            ),
            (
                json!({"matchExpressions": [{"key": "-a", "operator": "Exists"}]}),
                "key: Invalid value: \"-a\"",
            ),
            (
                json!({"matchLabels": {"a": "-x"}}),
                "a valid label must be an empty string",
            ),
            (json!({"matchLabels": {"a": 1}}), "must be a string"),
            (json!({"matchLabels": []}), "must be an object"),
            (json!({"matchExpressions": {}}), "must be a list"),
            (json!("app=web"), "must be an object"),
        ];
        for (obj, want) in bad {
            let err = label_selector_from_object(&obj)
                .expect_err(&format!("{obj} should fail"))
                .to_string();
            assert!(err.contains(want), "{obj}: got {err:?}, want {want:?}");
        }
    }

    #[test]
    fn non_string_label_values_compare_as_text() {
        let sel = parse_label_selector("n=5").unwrap();
        assert!(sel.matches(&labels(json!({"n": 5}))));
    }

    fn field_lookup(v: &Value) -> impl Fn(&str) -> Option<String> + '_ {
        move |key: &str| {
            let mut cur = v;
            for part in key.split('.') {
                cur = cur.get(part)?;
            }
            cur.as_str().map(str::to_string)
        }
    }

    #[test]
    fn field_selectors_parse() {
        type Want = &'static [(&'static str, FieldOp, &'static str)];
        let cases: &[(&str, Want)] = &[
            ("", &[]),
            (",", &[]),
            ("a=b", &[("a", FieldOp::Equals, "b")]),
            ("a==b", &[("a", FieldOp::Equals, "b")]),
            ("a!=b", &[("a", FieldOp::NotEquals, "b")]),
            ("a=", &[("a", FieldOp::Equals, "")]),
            ("a!=", &[("a", FieldOp::NotEquals, "")]),
            ("=b", &[("", FieldOp::Equals, "b")]),
            (
                "metadata.name=foo,status.phase!=Running",
                &[
                    ("metadata.name", FieldOp::Equals, "foo"),
                    ("status.phase", FieldOp::NotEquals, "Running"),
                ],
            ),
            (
                "z=1,a=2",
                &[("a", FieldOp::Equals, "2"), ("z", FieldOp::Equals, "1")],
            ),
            ("a=b\\,c", &[("a", FieldOp::Equals, "b,c")]),
            ("a=b\\=c", &[("a", FieldOp::Equals, "b=c")]),
            ("a=b\\\\c", &[("a", FieldOp::Equals, "b\\c")]),
            ("a=x y:z/ü", &[("a", FieldOp::Equals, "x y:z/ü")]),
            ("a =b", &[("a ", FieldOp::Equals, "b")]),
            ("a=b,", &[("a", FieldOp::Equals, "b")]),
        ];
        for (input, want) in cases {
            let sel = parse_field_selector(input)
                .unwrap_or_else(|e| panic!("{input:?} should parse, got {e}"));
            let got: Vec<_> = sel
                .requirements()
                .iter()
                .map(|r| (r.key.as_str(), r.op, r.value.as_str()))
                .collect();
            assert_eq!(got, want.to_vec(), "input {input:?}");
            assert_eq!(sel.is_empty(), want.is_empty());
        }
    }

    #[test]
    fn invalid_field_selectors() {
        let cases: &[(&str, &str)] = &[
            ("a", "invalid selector: 'a'; can't understand 'a'"),
            ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
            (" ", "can't understand ' '"),
            ("a=b=c", "unescaped character in value: '='"),
            ("a==b=c", "unescaped character in value: '='"),
            ("a=b\\", "invalid escape sequence: \\"),
            ("a=b\\n", "invalid escape sequence: \\n"),
        ];
        for (input, want) in cases {
            let err = parse_field_selector(input)
                .expect_err(&format!("{input:?} should fail"))
                .to_string();
            assert!(err.contains(want), "{input:?}: got {err:?}, want {want:?}");
        }
    }

    #[test]
    fn field_selector_matching_and_display() {
        let pod = json!({
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"nodeName": "node-a"},
            "status": {"phase": "Running"}
        });
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("metadata.name=web-1", true),
            ("metadata.name==web-1", true),
            ("metadata.name=web-2", false),
            ("metadata.name!=web-2", true),
            ("spec.nodeName=node-a,status.phase=Running", true),
            ("spec.nodeName=node-a,status.phase!=Running", false),
            ("spec.schedulerName=", true),
            ("spec.schedulerName!=", false),
            ("spec.schedulerName!=x", true),
        ];
        for (input, want) in cases {
            let sel = parse_field_selector(input).unwrap();
            assert_eq!(sel.matches(field_lookup(&pod)), *want, "selector {input:?}");
        }
        let sel = parse_field_selector("b==x\\,y,a!=1").unwrap();
        assert_eq!(sel.to_string(), "a!=1,b=x\\,y");
        assert_eq!(sel.keys().collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(sel.requires_exact_match("b"), Some("x,y"));
        assert_eq!(sel.requires_exact_match("a"), None);
        let reparsed = parse_field_selector(&sel.to_string()).unwrap();
        assert_eq!(reparsed, sel);
        assert_eq!(escape_field_value("a\\b,c=d"), "a\\\\b\\,c\\=d");
    }

    #[test]
    fn label_key_and_value_validators() {
        assert!(is_valid_label_key("kubernetes.io/os"));
        assert!(is_valid_label_key("node-role.kubernetes.io/control-plane"));
        assert!(!is_valid_label_key("Kubernetes.io/os"));
        assert!(!is_valid_label_key(""));
        assert!(is_valid_label_value(""));
        assert!(is_valid_label_value("v1.2_3-x"));
        assert!(!is_valid_label_value("v1 "));
    }
}
