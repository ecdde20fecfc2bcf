//! CCITT T.4 ("G3") decoding that the `fax` crate lacks: two-dimensional
//! coding (TIFF T4Options bit 0, PDF `K > 0`), where the tag bit after each
//! end-of-line says whether the next line is one-dimensional (Modified
//! Huffman runs) or coded against the line above as in T.6, and
//! one-dimensional data whose lines carry no end-of-line code at all, such as
//! TIFF's Modified Huffman (compression 2), whose lines start on a byte.
//! The `fax` crate's code tables and bit reader do the bit-level work.

use fax::maps::{Mode, black, mode, white};
use fax::{BitReader, ByteReader, Color};
use std::convert::Infallible;

/// Longest run of zero fill bits skipped before an end-of-line.
const MAX_FILL_BITS: usize = 64;

type Reader<'a> =
    ByteReader<std::iter::Map<std::slice::Iter<'a, u8>, fn(&u8) -> Result<u8, Infallible>>>;

fn reader(data: &[u8]) -> Option<Reader<'_>> {
    let ok: fn(&u8) -> Result<u8, Infallible> = |b| Ok(*b);
    ByteReader::new(data.iter().map(ok)).ok()
}

/// A run of one colour: make-up codes (64 and more) then a terminating code.
fn run(reader: &mut Reader<'_>, color: Color) -> Option<u16> {
    let mut sum: u16 = 0;
    // Bounded: a line is at most u16::MAX wide, make-up codes are >= 64.
    for _ in 0..1100 {
        let n = match color {
            Color::White => white::decode(reader)?,
            Color::Black => black::decode(reader)?,
        };
        sum = sum.checked_add(n)?;
        if n < 64 {
            return Some(sum);
        }
    }
    None
}

/// Skips zero fill bits and one end-of-line code if they come next; true if
/// there was one.
fn skip_eol(reader: &mut Reader<'_>) -> bool {
    // Nine zeros start no run or mode code: this is fill and/or an EOL.
    if reader.peek(9) != Some(0) {
        return false;
    }
    for _ in 0..MAX_FILL_BITS {
        match reader.peek(1) {
            Some(0) => {
                if reader.consume(1).is_err() {
                    return false;
                }
            }
            Some(_) => return reader.consume(1).is_ok(),
            None => return false,
        }
    }
    false
}

/// Pushes a changing element unless it is the line's end (not a colour change).
fn push(line: &mut Vec<u16>, at: u16, width: u16) {
    if at < width && line.last().is_none_or(|&last| at > last) {
        line.push(at);
    } else if at < width && line.last() == Some(&at) {
        // Two changes at one place cancel out.
        line.pop();
    }
}

fn one_d_line(reader: &mut Reader<'_>, width: u16, line: &mut Vec<u16>) -> Option<()> {
    let (mut a0, mut color) = (0u16, Color::White);
    while a0 < width {
        a0 = a0.checked_add(run(reader, color)?)?;
        push(line, a0, width);
        color = !color;
    }
    Some(())
}

/// b1: the first changing element on the reference line right of `a0` whose
/// colour is the opposite of `color`; b2: the one after it.
fn b1_b2(reference: &[u16], a0: Option<u16>, color: Color, width: u16) -> (u16, u16) {
    let mut i = match a0 {
        None => 0,
        Some(a0) => reference.partition_point(|&p| p <= a0),
    };
    // Even elements turn the line black, odd ones white.
    if (i % 2 == 0) != (color == Color::White) {
        i += 1;
    }
    let at = |i: usize| reference.get(i).copied().unwrap_or(width);
    (at(i), at(i + 1))
}

fn two_d_line(
    reader: &mut Reader<'_>,
    width: u16,
    reference: &[u16],
    line: &mut Vec<u16>,
) -> Option<()> {
    // `None`: the imaginary element before the line's first pixel.
    let (mut a0, mut color): (Option<u16>, Color) = (None, Color::White);
    while a0.is_none_or(|a0| a0 < width) {
        let (b1, b2) = b1_b2(reference, a0, color, width);
        match mode::decode(reader)? {
            Mode::Pass => a0 = Some(b2),
            Mode::Vertical(delta) => {
                let a1 = u16::try_from(i32::from(b1) + i32::from(delta)).ok()?;
                if a1 > width || a0.is_some_and(|a0| a1 < a0) {
                    return None;
                }
                push(line, a1, width);
                a0 = Some(a1);
                color = !color;
            }
            Mode::Horizontal => {
                let start = a0.unwrap_or(0);
                let a1 = start.checked_add(run(reader, color)?)?;
                let a2 = a1.checked_add(run(reader, !color)?)?;
                push(line, a1, width);
                push(line, a2, width);
                a0 = Some(a2);
            }
            Mode::Extension | Mode::EOF => return None,
        }
    }
    Some(())
}

/// How the lines are framed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Framing {
    /// 1-D lines, each after an optional EOL.
    OneD,
    /// 1-D or 2-D lines, each after an EOL and a tag bit.
    TwoD,
    /// 1-D lines with no EOL, each starting on a byte (TIFF compression 2).
    ByteAligned,
}

/// Decodes T.4 data, calling `line` with each line's changing elements (the
/// `fax` crate's form: positions where the colour flips, starting white).
/// Returns how many lines were read before the data ended or broke.
pub fn decode(
    data: &[u8],
    width: u16,
    height: u32,
    framing: Framing,
    mut on_line: impl FnMut(&[u16]),
) -> u32 {
    let two_d = framing == Framing::TwoD;
    let Some(mut reader) = reader(data) else {
        return 0;
    };
    let (mut reference, mut current) = (Vec::new(), Vec::new());
    let mut lines = 0;
    while lines < height {
        if framing == Framing::ByteAligned {
            let pad = reader.bits_to_byte_boundary();
            if reader.consume(pad).is_err() {
                break;
            }
        }
        let had_eol = framing != Framing::ByteAligned && skip_eol(&mut reader);
        // Further EOLs straight after one: the end-of-page (RTC) sequence.
        if had_eol && reader.peek(9) == Some(0) && !two_d {
            break;
        }
        // 2-D coding: a tag bit after the EOL, 1 for a 1-D line.
        let one_d = if two_d {
            let Some(tag) = reader.peek(1) else { break };
            if reader.consume(1).is_err() {
                break;
            }
            tag == 1
        } else {
            true
        };
        if reader.peek(1).is_none() {
            break;
        }
        current.clear();
        let decoded = if one_d {
            one_d_line(&mut reader, width, &mut current)
        } else {
            two_d_line(&mut reader, width, &reference, &mut current)
        };
        if decoded.is_none() {
            break;
        }
        on_line(&current);
        std::mem::swap(&mut reference, &mut current);
        lines += 1;
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use fax::{BitWriter, Bits};
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Records the bits the `fax` crate's T.6 encoder writes, so each line's
    /// 2-D code can be cut out and framed as T.4 2-D.
    struct Log(Rc<RefCell<Vec<bool>>>);

    impl BitWriter for Log {
        type Error = Infallible;
        fn write(&mut self, bits: Bits) -> Result<(), Infallible> {
            let mut log = self.0.borrow_mut();
            for i in (0..bits.len).rev() {
                log.push((bits.data >> i) & 1 == 1);
            }
            Ok(())
        }
    }

    const WIDTH: u16 = 1728;
    const EOL: [bool; 12] = [
        false, false, false, false, false, false, false, false, false, false, false, true,
    ];

    fn bits(code: &str) -> impl Iterator<Item = bool> + '_ {
        code.chars().map(|c| c == '1')
    }

    /// A fax page (1728 wide) as T.4 2-D: the first line 1-D (all white:
    /// make-up 1728, terminating 0), every other line 2-D, each after an EOL
    /// and its tag bit, then the six EOL+1 end-of-page sequence.
    fn encode_t4_2d(lines: &[Vec<Color>]) -> Vec<u8> {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut encoder = fax::encoder::Encoder::new(Log(Rc::clone(&log)));
        let mut out: Vec<bool> = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let before = log.borrow().len();
            encoder.encode_line(line.iter().copied(), WIDTH).unwrap();
            out.extend(EOL);
            if i == 0 {
                assert!(line.iter().all(|&c| c == Color::White));
                out.push(true);
                out.extend(bits("010011011"));
                out.extend(bits("00110101"));
            } else {
                out.push(false);
                out.extend_from_slice(&log.borrow()[before..]);
            }
        }
        for _ in 0..6 {
            out.extend(EOL);
            out.push(true);
        }
        out.chunks(8)
            .map(|byte| {
                byte.iter()
                    .enumerate()
                    .fold(0u8, |acc, (i, &b)| acc | (u8::from(b) << (7 - i)))
            })
            .collect()
    }

    #[test]
    fn two_d_lines_decode_to_what_was_encoded() {
        // Shapes that exercise pass, vertical and horizontal modes.
        let lines: Vec<Vec<Color>> = (0..120u16)
            .map(|y| {
                (0..WIDTH)
                    .map(|x| {
                        let block = y > 10 && (100..400).contains(&x) && y < 60;
                        let diagonal = y > 0 && x.abs_diff(300 + 3 * y) < 4;
                        let stripes = y > 70 && (x / 9) % 3 == 0 && x < 900;
                        if block || diagonal || stripes {
                            Color::Black
                        } else {
                            Color::White
                        }
                    })
                    .collect()
            })
            .collect();
        let data = encode_t4_2d(&lines);
        let mut decoded = Vec::new();
        let count = decode(&data, WIDTH, 1000, Framing::TwoD, |t| {
            decoded.push(fax::decoder::pels(t, WIDTH).collect::<Vec<_>>())
        });
        assert_eq!(count as usize, lines.len());
        for (y, (got, want)) in decoded.iter().zip(&lines).enumerate() {
            assert!(got == want, "line {y} differs");
        }
    }

    #[test]
    fn broken_data_stops_without_panicking() {
        let mut lines = 0;
        decode(
            &[0xFF, 0x00, 0x13, 0x77, 0xFF],
            WIDTH,
            100,
            Framing::TwoD,
            |_| lines += 1,
        );
        decode(&[], WIDTH, 100, Framing::OneD, |_| lines += 1);
        assert!(lines < 100);
    }

    fn pack(bits: &[bool]) -> Vec<u8> {
        bits.chunks(8)
            .map(|byte| {
                byte.iter()
                    .enumerate()
                    .fold(0u8, |acc, (i, &b)| acc | (u8::from(b) << (7 - i)))
            })
            .collect()
    }

    #[test]
    fn modified_huffman_lines_start_on_a_byte() {
        // White lines (make-up 1728, white 0: 17 bits) and black lines (white
        // 0, black make-up 1728, black 0: 31 bits), each padded to a byte.
        let mut data = Vec::new();
        let want: Vec<bool> = (0..9).map(|y| y % 3 == 1).collect();
        for &black in &want {
            let code = if black {
                "00110101".to_owned() + "0000001100101" + "0000110111"
            } else {
                "010011011".to_owned() + "00110101"
            };
            data.extend(pack(&bits(&code).collect::<Vec<_>>()));
        }
        let mut got = Vec::new();
        let count = decode(&data, WIDTH, 9, Framing::ByteAligned, |t| {
            got.push(fax::decoder::pels(t, WIDTH).all(|c| c == Color::Black))
        });
        assert_eq!(count, 9);
        assert_eq!(got, want);
    }
}
