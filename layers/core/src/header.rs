//! Integer header values (`Content-Length`, `X-RateLimit-*`) without the two allocations of
//! `HeaderValue::from(u64)` on every response.

use http::HeaderValue;

/// Numbers below this come from [`DIGITS`] and cost no allocation.
const SMALL: usize = 10_000;
/// Each number's slot in [`DIGITS`]: its digits, then `0`s up to four bytes.
const WIDTH: usize = 4;

/// `0000100020003000…99999999`: the decimal text of every number below [`SMALL`], built
/// at compile time, so a small number's header value borrows static text.
static DIGITS: [u8; SMALL * WIDTH] = digits();

const fn digits() -> [u8; SMALL * WIDTH] {
    let mut out = [b'0'; SMALL * WIDTH];
    let mut n = 0;
    while n < SMALL {
        let len = decimal_len(n as u64);
        let mut v = n;
        let mut i = len;
        while i > 0 {
            i -= 1;
            out[n * WIDTH + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        n += 1;
    }
    out
}

const fn decimal_len(n: u64) -> usize {
    let mut len = 1;
    let mut v = n / 10;
    while v > 0 {
        len += 1;
        v /= 10;
    }
    len
}

/// `n` in decimal as a header value: static text below 10 000, one allocation above.
pub fn int_header(n: u64) -> HeaderValue {
    if n < SMALL as u64 {
        let at = n as usize * WIDTH;
        let text = &DIGITS[at..at + decimal_len(n)];
        return HeaderValue::from_static(std::str::from_utf8(text).expect("ASCII digits"));
    }
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    HeaderValue::from_bytes(&buf[i..]).expect("digits are a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_number_as_from_u64_does() {
        let edges = [
            0,
            1,
            9,
            10,
            99,
            100,
            999,
            1000,
            9999,
            10_000,
            10_001,
            123_456_789,
        ];
        for n in (0..10_100).chain(edges).chain([u64::MAX - 1, u64::MAX]) {
            assert_eq!(int_header(n), HeaderValue::from(n), "{n}");
        }
    }
}
