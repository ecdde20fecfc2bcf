//! Scan order: the order in which a scanner wrote its files.
//!
//! Files are ordered by modification time, and files with the same time by
//! their names in natural order (`scan_9` before `scan_10`): equal times are
//! common (FAT and exFAT keep two seconds, SMB shares and fast scanners one
//! tick for several files), and scanners number their files. Pure: no I/O.

use std::cmp::Ordering;
use std::path::Path;

/// Compares two names as a person reads them: runs of digits by their value,
/// everything else character by character, case-insensitively; ties broken
/// by the exact text so that the order is total.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.chars().peekable(), b.chars().peekable());
    loop {
        match (x.peek().copied(), y.peek().copied()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let run_x = digit_run(&mut x);
                let run_y = digit_run(&mut y);
                let order = compare_numbers(&run_x, &run_y);
                if order != Ordering::Equal {
                    return order;
                }
            }
            (Some(c), Some(d)) => {
                let order = c.to_lowercase().cmp(d.to_lowercase());
                if order != Ordering::Equal {
                    return order;
                }
                x.next();
                y.next();
            }
        }
    }
}

fn digit_run(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> String {
    let mut run = String::new();
    while let Some(c) = chars.peek().copied().filter(char::is_ascii_digit) {
        run.push(c);
        chars.next();
    }
    run
}

/// Digit strings by value, however long (no overflow): fewer significant
/// digits is smaller; `007` equals `7` here and the exact-text tie-break
/// orders them.
fn compare_numbers(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Scan order of two files given by their modification time and path.
pub fn scan_cmp(a: (i64, &Path), b: (i64, &Path)) -> Ordering {
    a.0.cmp(&b.0).then_with(|| {
        let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
        match (name(a.1), name(b.1)) {
            (Some(x), Some(y)) => natural_cmp(&x, &y),
            _ => Ordering::Equal,
        }
        .then_with(|| a.1.cmp(b.1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_names_order_by_value() {
        let mut names = vec![
            "scan_10.jpg",
            "scan_9.jpg",
            "scan_1.jpg",
            "scan_11.jpg",
            "scan_2.jpg",
            "Scan_3.jpg",
            "scan_0004.jpg",
            "scan_99999999999999999999999.jpg",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            [
                "scan_1.jpg",
                "scan_2.jpg",
                "Scan_3.jpg",
                "scan_0004.jpg",
                "scan_9.jpg",
                "scan_10.jpg",
                "scan_11.jpg",
                "scan_99999999999999999999999.jpg",
            ]
        );
    }

    #[test]
    fn the_order_is_total_and_consistent() {
        assert_eq!(natural_cmp("a7", "a007"), "a7".cmp("a007"));
        assert_ne!(natural_cmp("a7", "a007"), Ordering::Equal);
        assert_eq!(natural_cmp("x", "x"), Ordering::Equal);
        assert_eq!(natural_cmp("页2", "页10"), Ordering::Less);
        assert_eq!(natural_cmp("scan", "scan_1"), Ordering::Less);
    }

    #[test]
    fn time_comes_before_the_name() {
        let early = (5, Path::new("/in/scan_10.jpg"));
        let late = (6, Path::new("/in/scan_9.jpg"));
        assert_eq!(scan_cmp(early, late), Ordering::Less);
        let same_time = (5, Path::new("/in/scan_9.jpg"));
        assert_eq!(scan_cmp(same_time, early), Ordering::Less);
    }
}
