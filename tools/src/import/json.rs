//! JSON helpers: config reading that accepts non-finite floats as written by Python
//! (`Infinity`, `-Infinity`, `NaN` bare tokens, or `{"__float__": "Infinity"}`).

use std::path::Path;

use serde_json::Value;

use crate::error::ToolError;

/// Reads a JSON file; bare `Infinity`/`-Infinity`/`NaN` tokens are accepted.
pub fn read_json(path: &Path) -> Result<Value, ToolError> {
    let text = std::fs::read_to_string(path).map_err(|e| ToolError::io(path, e))?;
    parse_json(&text).map_err(|msg| ToolError::Json {
        path: path.to_path_buf(),
        msg,
    })
}

/// Parses JSON text, first quoting Python's bare non-finite tokens outside strings.
pub fn parse_json(text: &str) -> Result<Value, String> {
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        Err(first) => {
            let fixed = quote_nonfinite(text);
            serde_json::from_str(&fixed).map_err(|_| first.to_string())
        }
    }
}

fn quote_nonfinite(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut in_str = false;
    let mut esc = false;
    let mut i = 0;
    let b = text.as_bytes();
    while i < b.len() {
        let c = b[i];
        if in_str {
            out.push(c as char);
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        if c == b'"' {
            in_str = true;
            out.push('"');
            i += 1;
            continue;
        }
        let rest = &text[i..];
        let mut matched = false;
        for tok in ["-Infinity", "Infinity", "NaN"] {
            if rest.starts_with(tok) {
                out.push_str(&format!("{{\"__float__\": \"{tok}\"}}"));
                i += tok.len();
                matched = true;
                break;
            }
        }
        if !matched {
            // Push the whole UTF-8 character.
            let ch = rest.chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// A number, or `{"__float__": "Infinity" | "-Infinity" | "NaN"}`.
pub fn as_f64(v: &Value) -> Option<f64> {
    if let Some(x) = v.as_f64() {
        return Some(x);
    }
    match v.get("__float__")?.as_str()? {
        "Infinity" | "inf" => Some(f64::INFINITY),
        "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        s => s.parse().ok(),
    }
}

/// Typed accessors with errors naming the key.
pub struct Cfg<'a> {
    pub path: &'a Path,
    pub v: &'a Value,
}

impl Cfg<'_> {
    fn err(&self, msg: String) -> ToolError {
        ToolError::Config {
            path: self.path.to_path_buf(),
            msg,
        }
    }
    pub fn u32(&self, key: &str) -> Result<u32, ToolError> {
        let x = self
            .v
            .get(key)
            .ok_or_else(|| self.err(format!("missing key `{key}`")))?;
        x.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| self.err(format!("`{key}` must be a non-negative integer, got {x}")))
    }
    pub fn u32_or(&self, key: &str, default: u32) -> Result<u32, ToolError> {
        match self.v.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(_) => self.u32(key),
        }
    }
    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64, ToolError> {
        match self.v.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(x) => {
                as_f64(x).ok_or_else(|| self.err(format!("`{key}` must be a number, got {x}")))
            }
        }
    }
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool, ToolError> {
        match self.v.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(x) => x
                .as_bool()
                .ok_or_else(|| self.err(format!("`{key}` must be true or false, got {x}"))),
        }
    }
    pub fn str_or<'s>(&'s self, key: &str, default: &'s str) -> Result<&'s str, ToolError> {
        match self.v.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(x) => x
                .as_str()
                .ok_or_else(|| self.err(format!("`{key}` must be a string, got {x}"))),
        }
    }
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.v.get(key)
    }
    pub fn error(&self, msg: impl Into<String>) -> ToolError {
        self.err(msg.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonfinite_tokens() {
        let v =
            parse_json(r#"{"a": [0.0, Infinity], "s": "Infinity NaN", "b": -Infinity}"#).unwrap();
        assert_eq!(as_f64(&v["a"][1]), Some(f64::INFINITY));
        assert_eq!(as_f64(&v["b"]), Some(f64::NEG_INFINITY));
        assert_eq!(v["s"], "Infinity NaN");
        let v = parse_json(r#"{"t": [0.0, {"__float__": "Infinity"}]}"#).unwrap();
        assert_eq!(as_f64(&v["t"][1]), Some(f64::INFINITY));
        assert!(parse_json("{\"a\": }").is_err());
    }
}
