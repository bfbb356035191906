//! Redis-style glob matching (KEYS, CONFIG GET).
//!
//! * `*` matches any run of bytes (including none), `?` any one byte.
//! * `[abc]` one of the listed bytes, `[^abc]` any other, `[a-z]` a range
//!   (reversed ranges like `[z-a]` work too), `\` escapes inside brackets;
//!   an unterminated `[` takes the rest of the pattern as its set.
//! * `\x` matches `x` literally; a trailing `\` matches a backslash.
//!
//! The matcher is iterative with a single backtracking point for the last
//! `*` seen, so it runs in O(pattern × string) time at worst (a recursive
//! matcher is exponential on patterns like `*a*a*a*a*b`) and uses no stack.
//!
//! Redis's recursive matcher gives up (no match) once a match would go
//! through more than `MAX_STARS` (1000) `*` runs; that limit is kept so that the
//! answers agree (its keyspace test matches `*?` repeated 50,000 times
//! against a 50,000-byte key and expects nothing).

/// Does `string` match `pattern`? With `nocase`, ASCII letters compare
/// case-insensitively.
pub fn glob_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    if inner_star_runs(pattern) > MAX_STARS {
        return false;
    }
    let (mut p, mut s) = (0, 0);
    // Pattern index just after the last `*`, and the string index it is
    // currently assumed to have matched up to.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() {
            if pattern[p] == b'*' {
                while p < pattern.len() && pattern[p] == b'*' {
                    p += 1;
                }
                if p == pattern.len() {
                    return true;
                }
                star = Some((p, s));
                continue;
            }
            if s < string.len() {
                let (ok, next) = match_one(pattern, p, string[s], nocase);
                if ok {
                    p = next;
                    s += 1;
                    continue;
                }
            }
        } else if s == string.len() {
            return true;
        }
        // Mismatch: let the last `*` swallow one more byte and retry.
        match star {
            Some((sp, ss)) if ss < string.len() => {
                star = Some((sp, ss + 1));
                p = sp;
                s = ss + 1;
            }
            _ => return false,
        }
    }
}

/// Redis's `stringmatchlen` nests one call per `*` run it crosses and
/// answers "no match" past 1000 levels.
const MAX_STARS: usize = 1000;

/// The `*` runs a complete match must cross: every run except one that ends
/// the pattern (which matches the rest of the string at once). Escaped
/// stars and stars inside classes are literal and do not count.
fn inner_star_runs(pattern: &[u8]) -> usize {
    let (mut p, mut runs) = (0, 0);
    while p < pattern.len() {
        p = match pattern[p] {
            b'*' => {
                while p < pattern.len() && pattern[p] == b'*' {
                    p += 1;
                }
                if p < pattern.len() {
                    runs += 1;
                }
                p
            }
            _ => match_one(pattern, p, 0, false).1,
        };
    }
    runs
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

/// Match the single-byte token at `pattern[p]` (not `*`) against `c`.
/// Returns whether it matched and the index of the next token.
fn match_one(pattern: &[u8], p: usize, c: u8, nocase: bool) -> (bool, usize) {
    match pattern[p] {
        b'?' => (true, p + 1),
        b'\\' if p + 1 < pattern.len() => (eq(pattern[p + 1], c, nocase), p + 2),
        b'[' => match_class(pattern, p + 1, c, nocase),
        lit => (eq(lit, c, nocase), p + 1),
    }
}

/// A bracket class whose contents start at `i` (just after `[`).
fn match_class(pattern: &[u8], mut i: usize, c: u8, nocase: bool) -> (bool, usize) {
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    let next = loop {
        let rest = pattern.len() - i.min(pattern.len());
        if rest == 0 {
            // Unterminated: the set runs to the end of the pattern.
            break pattern.len();
        }
        let b = pattern[i];
        if b == b'\\' && rest >= 2 {
            i += 1;
            if eq(pattern[i], c, nocase) {
                matched = true;
            }
        } else if b == b']' {
            break i + 1;
        } else if rest >= 3 && pattern[i + 1] == b'-' {
            let (mut lo, mut hi) = (pattern[i], pattern[i + 2]);
            let mut x = c;
            if nocase {
                lo = lo.to_ascii_lowercase();
                hi = hi.to_ascii_lowercase();
                x = x.to_ascii_lowercase();
            }
            if lo > hi {
                std::mem::swap(&mut lo, &mut hi);
            }
            if (lo..=hi).contains(&x) {
                matched = true;
            }
            i += 2;
        } else if eq(b, c, nocase) {
            matched = true;
        }
        i += 1;
    };
    (matched != negate, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        // (pattern, string, expected)
        let cases: &[(&str, &str, bool)] = &[
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "anything", true),
            ("**", "x", true),
            ("a", "a", true),
            ("a", "b", false),
            ("a", "aa", false),
            ("h?llo", "hello", true),
            ("h?llo", "hallo", true),
            ("h?llo", "hllo", false),
            ("h*llo", "hllo", true),
            ("h*llo", "heeeello", true),
            ("h*llo", "hello world", false),
            ("h[ae]llo", "hello", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hbllo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hallo", true),
            ("h[a-b]llo", "hbllo", true),
            ("h[a-b]llo", "hcllo", false),
            ("h[b-a]llo", "hallo", true), // reversed range
            ("[0-9][0-9]", "42", true),
            ("[0-9][0-9]", "4x", false),
            ("[abc-]", "-", false), // "c-]" is a range c..']' and the class is unterminated
            ("[a\\]]", "]", true),
            ("[a\\]]", "a", true),
            ("[\\-]", "-", true),
            ("[]", "]", false),
            ("[]a]", "a", false), // closes at the first `]`, then literal a] ...
            ("[]a]", "]", false),
            ("[", "a", false),  // empty unterminated class
            ("[ab", "a", true), // unterminated class
            ("[ab", "c", false),
            ("[^", "a", true), // negated empty unterminated class
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("\\?x", "?x", true),
            ("a\\", "a\\", true), // trailing backslash is literal
            ("a\\", "a", false),
            ("*.txt", "notes.txt", true),
            ("*.txt", "notes.txt.bak", false),
            ("user:*:name", "user:42:name", true),
            ("user:*:name", "user:42:age", false),
            ("*a*b", "xaxxb", true),
            ("*a*b", "xaxxbx", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "acb", false),
            ("*?", "", false),
            ("*?", "x", true),
            ("?*", "", false),
            ("[*]", "*", true),
            ("[*]", "x", false),
        ];
        for &(p, s, want) in cases {
            assert_eq!(
                glob_match(p.as_bytes(), s.as_bytes(), false),
                want,
                "{p:?} vs {s:?}"
            );
        }
    }

    #[test]
    fn nocase() {
        assert!(glob_match(b"SAVE", b"save", true));
        assert!(!glob_match(b"SAVE", b"save", false));
        assert!(glob_match(b"[A-C]x", b"bX", true));
        assert!(glob_match(b"[^A]", b"b", true));
        assert!(!glob_match(b"[^A]", b"a", true));
        assert!(glob_match(b"max*", b"MAXMEMORY", true));
    }

    #[test]
    fn binary_safe() {
        assert!(glob_match(b"a*\xff", b"a\x00\x01\xff", false));
        assert!(glob_match(b"?", b"\x00", false));
        assert!(glob_match(b"[\x00-\x10]", b"\x05", false));
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let pattern = "*a".repeat(30) + "b";
        let s = "a".repeat(5000);
        let t = std::time::Instant::now();
        assert!(!glob_match(pattern.as_bytes(), s.as_bytes(), false));
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }

    /// Redis's keyspace test "Regression for pattern matching very long
    /// nested loops": 50,000 `*?` against 50,000 bytes, which Redis answers
    /// with no match (its nesting limit), at once.
    #[test]
    fn very_long_nested_loops_give_no_match_quickly() {
        let pattern = "*?".repeat(50_000);
        let s = "a".repeat(50_000);
        let t = std::time::Instant::now();
        assert!(!glob_match(pattern.as_bytes(), s.as_bytes(), false));
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        // Up to the limit, a match still matches; a final `*` is free.
        let pattern = "*?".repeat(1000) + "*";
        assert!(glob_match(pattern.as_bytes(), s.as_bytes(), false));
        let pattern = "*?".repeat(1001);
        assert!(!glob_match(pattern.as_bytes(), s.as_bytes(), false));
        // Escaped and bracketed stars are literals.
        let pattern = "\\*".repeat(2000);
        assert!(glob_match(
            pattern.as_bytes(),
            "*".repeat(2000).as_bytes(),
            false
        ));
    }

    /// Reference matcher: straightforward recursion over the same token
    /// semantics, used to cross-check the iterative one on small inputs.
    fn reference(p: &[u8], s: &[u8]) -> bool {
        if p.is_empty() {
            return s.is_empty();
        }
        if p[0] == b'*' {
            return (0..=s.len()).any(|k| reference(&p[1..], &s[k..]));
        }
        if s.is_empty() {
            return false;
        }
        let (ok, next) = match_one(p, 0, s[0], false);
        ok && reference(&p[next..], &s[1..])
    }

    proptest::proptest! {
        #[test]
        fn prop_matches_reference(
            p in proptest::collection::vec(proptest::prop_oneof![
                proptest::strategy::Just(b'*'), proptest::strategy::Just(b'?'),
                proptest::strategy::Just(b'['), proptest::strategy::Just(b']'),
                proptest::strategy::Just(b'^'), proptest::strategy::Just(b'-'),
                proptest::strategy::Just(b'\\'), proptest::strategy::Just(b'a'),
                proptest::strategy::Just(b'b')], 0..10),
            s in proptest::collection::vec(proptest::prop_oneof![
                proptest::strategy::Just(b'a'), proptest::strategy::Just(b'b'),
                proptest::strategy::Just(b'-'), proptest::strategy::Just(b']')], 0..8),
        ) {
            proptest::prop_assert_eq!(glob_match(&p, &s, false), reference(&p, &s));
        }
    }
}
