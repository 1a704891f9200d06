//! Path helpers: parent/name split, Java's path validation, sequential suffixes.

/// Split a path into parent and last component: "/a/b" → ("/a", "b"), "/a" → ("/", "a").
pub fn parent_and_name(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("/", path),
    }
}

fn bad_char(c: char) -> bool {
    // Java sees a character outside the BMP as a surrogate pair, which its U+D800–U+F8FF
    // rule refuses; surrogates themselves cannot occur in a Rust string.
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{e000}'..='\u{f8ff}' | '\u{fff0}'..='\u{ffff}')
        || c > '\u{ffff}'
}

/// Java's `PathUtils.validatePath`; `sequential` allows a trailing '/' (the suffix follows).
pub fn validate_path(path: &str, sequential: bool) -> bool {
    if path.is_empty() || !path.starts_with('/') {
        return false;
    }
    if path.len() == 1 {
        return true;
    }
    let body = if sequential {
        format!("{path}1")
    } else {
        path.to_owned()
    };
    if body.ends_with('/') {
        return false;
    }
    if body.chars().any(bad_char) {
        return false;
    }
    body[1..]
        .split('/')
        .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// The sequential-node suffix: Java's `String.format("%010d", cversion)`.
pub fn sequential_suffix(cversion: i32) -> String {
    if cversion < 0 {
        format!("-{:09}", -(cversion as i64))
    } else {
        format!("{cversion:010}")
    }
}
