//! Natural order of names: runs of ASCII digits compare as numbers, so that
//! `s2` < `s10` and `2.pgm` < `10.pgm`. It is the training order of
//! `ocellus eval` (persons, then files) and the order of its per-person
//! results.
//!
//! Invariant: a total order that is equal only for equal strings. Digit
//! runs of equal value compare by length (`s2` < `s02`), so different
//! names never tie.

use std::cmp::Ordering;

/// Compares `a` and `b` in natural order (see the module docs).
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (&a[..na], &b[..nb]);
                let ta = trim_zeros(da);
                let tb = trim_zeros(db);
                let ord = ta
                    .len()
                    .cmp(&tb.len())
                    .then_with(|| ta.cmp(tb))
                    .then(na.cmp(&nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

/// A digit run without its leading zeros (one zero is kept for "0...0").
fn trim_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&c| c == b'0').count();
    &digits[zeros.min(digits.len().saturating_sub(1))..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_compares_numbers() {
        let mut v = vec!["s10", "s2", "s1", "a", "s02"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, vec!["a", "s1", "s2", "s02", "s10"]);
        assert_eq!(natural_cmp("10.pgm", "2.pgm"), Ordering::Greater);
    }

    #[test]
    fn only_equal_names_compare_equal() {
        assert_eq!(natural_cmp("s00", "s00"), Ordering::Equal);
        assert_eq!(natural_cmp("s0", "s00"), Ordering::Less);
        assert_eq!(natural_cmp("subject", "subject01"), Ordering::Less);
        assert_eq!(natural_cmp("9", "a"), Ordering::Less);
    }
}
