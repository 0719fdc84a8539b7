//! `${VAR}` and `${VAR:default}` expansion inside parsed YAML string values.
//!
//! Expansion runs on the values after YAML parsing, never on the raw text, so
//! a secret containing `#`, `:` or quotes survives intact, and a substituted
//! value is never expanded a second time. `$${` stands for a literal `${`.

use serde_json::Value;

/// Replaces every `${VAR}` / `${VAR:default}` in the string values of `value`,
/// looking variables up with `lookup`. Returns every unresolved reference.
pub fn interpolate_tree(
    value: &mut Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) {
    match value {
        Value::String(text) => match interpolate(text, lookup) {
            Ok(expanded) => *text = expanded,
            Err(missing) => problems.push(format!(
                "{path}: environment variable {missing} is not set and has no default"
            )),
        },
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                interpolate_tree(item, &format!("{path}[{index}]"), lookup, problems);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                interpolate_tree(item, &child, lookup, problems);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Expands one string. `Err` carries the name of a variable that is unset and
/// has no default.
pub fn interpolate(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        if let Some(stripped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = stripped;
            continue;
        }
        let Some(inner_start) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let Some(end) = inner_start.find('}') else {
            // An unterminated reference is kept as written.
            out.push_str(after);
            rest = "";
            break;
        };
        let inner = &inner_start[..end];
        let (name, default) = match inner.split_once(':') {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        match (lookup(name), default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => return Err(name.to_string()),
        }
        rest = &inner_start[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("pat-na1-#:'\"${NOT_EXPANDED}".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn set_variable_is_substituted_verbatim_and_not_expanded_twice() {
        assert_eq!(
            interpolate("Bearer ${TOKEN}", &env).unwrap(),
            "Bearer pat-na1-#:'\"${NOT_EXPANDED}"
        );
    }

    #[test]
    fn default_applies_only_when_unset_and_may_contain_colons() {
        assert_eq!(
            interpolate("${MISSING:http://x:1}", &env).unwrap(),
            "http://x:1"
        );
        assert_eq!(interpolate("${EMPTY:fallback}", &env).unwrap(), "");
        assert_eq!(interpolate("${MISSING:}", &env).unwrap(), "");
    }

    #[test]
    fn unset_variable_without_default_is_reported() {
        assert_eq!(
            interpolate("a ${MISSING} b", &env),
            Err("MISSING".to_string())
        );
    }

    #[test]
    fn literal_dollars_and_escapes_survive() {
        assert_eq!(
            interpolate("cost $5 #not-a-comment", &env).unwrap(),
            "cost $5 #not-a-comment"
        );
        assert_eq!(interpolate("$${TOKEN}", &env).unwrap(), "${TOKEN}");
        assert_eq!(
            interpolate("${UNTERMINATED", &env).unwrap(),
            "${UNTERMINATED"
        );
    }

    #[test]
    fn tree_walk_reports_every_problem_with_its_path() {
        let mut value = serde_json::json!({"a": ["${X1}", "ok"], "b": {"c": "${X2}"}, "d": 3});
        let mut problems = Vec::new();
        interpolate_tree(&mut value, "", &env, &mut problems);
        assert_eq!(problems.len(), 2);
        assert!(problems[0].starts_with("a[0]"));
        assert!(problems[1].starts_with("b.c"));
    }
}
