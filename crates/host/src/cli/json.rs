//! Just enough JSON writing for `opnet-cli`'s output: objects with fields in the
//! order written (so `"type"` comes first), strings escaped per RFC 8259. Output is
//! written as it is produced, so listing a million UTXOs needs no document in
//! memory.

use std::fmt::Write as _;

/// `s` as a JSON string literal, quotes included.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON object being written, field by field.
#[derive(Debug)]
pub struct Object {
    buf: String,
}

impl Default for Object {
    fn default() -> Object {
        Object::new()
    }
}

impl Object {
    /// An empty object.
    pub fn new() -> Object {
        Object {
            buf: String::from("{"),
        }
    }

    fn key(&mut self, key: &str) -> &mut String {
        if self.buf.len() > 1 {
            self.buf.push(',');
        }
        self.buf.push_str(&string(key));
        self.buf.push(':');
        &mut self.buf
    }

    /// A string field.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Object {
        let v = string(value);
        self.key(key).push_str(&v);
        self
    }

    /// A number field (integers; written exactly, never through a float).
    pub fn num(&mut self, key: &str, value: impl Into<u64>) -> &mut Object {
        let v = value.into();
        let _ = write!(self.key(key), "{v}");
        self
    }

    /// A boolean field.
    pub fn bool(&mut self, key: &str, value: bool) -> &mut Object {
        self.key(key).push_str(if value { "true" } else { "false" });
        self
    }

    /// A string field, or `null`.
    pub fn opt_str(&mut self, key: &str, value: Option<&str>) -> &mut Object {
        match value {
            Some(v) => self.str(key, v),
            None => self.raw(key, "null"),
        }
    }

    /// A field whose value is already JSON (a nested object, an array, a fraction).
    pub fn raw(&mut self, key: &str, json: &str) -> &mut Object {
        self.key(key).push_str(json);
        self
    }

    /// The finished object.
    pub fn finish(&mut self) -> String {
        let mut out = std::mem::take(&mut self.buf);
        out.push('}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(string("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\u0001é\"");
    }

    #[test]
    fn objects_keep_field_order() {
        let inner = Object::new().num("h", 5u32).finish();
        let s = Object::new()
            .str("type", "x")
            .num("n", u64::MAX)
            .bool("b", false)
            .opt_str("none", None)
            .raw("o", &inner)
            .finish();
        assert_eq!(
            s,
            "{\"type\":\"x\",\"n\":18446744073709551615,\"b\":false,\"none\":null,\"o\":{\"h\":5}}"
        );
        assert_eq!(Object::new().finish(), "{}");
    }
}
