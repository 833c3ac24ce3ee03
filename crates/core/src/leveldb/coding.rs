//! Varints, fixed-width integers and internal keys, all decoded without panicking.

use std::cmp::Ordering;

/// Largest sequence number LevelDB can assign (56 bits).
pub(crate) const MAX_SEQUENCE: u64 = (1 << 56) - 1;
/// Value type of an internal key that holds a value.
pub(crate) const TYPE_VALUE: u8 = 1;
/// Value type of an internal key that marks a deletion.
pub(crate) const TYPE_DELETION: u8 = 0;

/// Decodes a varint32 at `*pos`, advancing `*pos`. `None` when truncated or over 32 bits.
#[inline]
pub(crate) fn get_varint32(buf: &[u8], pos: &mut usize) -> Option<u32> {
    let mut result: u32 = 0;
    let mut shift = 0u32;
    let mut p = *pos;
    loop {
        let byte = *buf.get(p)?;
        p += 1;
        if shift == 28 && byte > 0x0f {
            return None;
        }
        result |= u32::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            *pos = p;
            return Some(result);
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
}

/// Decodes a varint64 at `*pos`, advancing `*pos`. `None` when truncated or over 64 bits.
#[inline]
pub(crate) fn get_varint64(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut result: u64 = 0;
    let mut shift = 0u32;
    let mut p = *pos;
    loop {
        let byte = *buf.get(p)?;
        p += 1;
        if shift == 63 && byte > 0x01 {
            return None;
        }
        result |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            *pos = p;
            return Some(result);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

/// Decodes a varint32 length followed by that many bytes.
#[inline]
pub(crate) fn get_length_prefixed<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let mut p = *pos;
    let len = get_varint32(buf, &mut p)? as usize;
    let s = buf.get(p..p.checked_add(len)?)?;
    *pos = p + len;
    Some(s)
}

#[inline]
pub(crate) fn fixed32(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    Some(u32::from_le_bytes(a))
}

#[inline]
pub(crate) fn fixed64(buf: &[u8], at: usize) -> Option<u64> {
    let b = buf.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

/// CRC32C as LevelDB stores it: rotated and offset so that a CRC of data that itself
/// contains CRCs stays well distributed.
#[inline]
pub(crate) fn mask_crc(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Splits an internal key into its user key and its tag (`seq << 8 | type`).
/// A key shorter than 8 bytes (rejected by every decoder before it gets here) yields tag 0.
#[inline]
pub(crate) fn split_internal(ikey: &[u8]) -> (&[u8], u64) {
    if ikey.len() < 8 {
        return (ikey, 0);
    }
    let (user, tag) = ikey.split_at(ikey.len() - 8);
    let mut a = [0u8; 8];
    a.copy_from_slice(tag);
    (user, u64::from_le_bytes(a))
}

/// The user-key part of an internal key.
#[inline]
pub(crate) fn user_key(ikey: &[u8]) -> &[u8] {
    ikey.get(..ikey.len().saturating_sub(8)).unwrap_or(&[])
}

/// LevelDB's internal key order: user key ascending, then tag (sequence) descending.
#[inline]
pub(crate) fn cmp_internal(a: &[u8], b: &[u8]) -> Ordering {
    let (ua, ta) = split_internal(a);
    let (ub, tb) = split_internal(b);
    match ua.cmp(ub) {
        Ordering::Equal => tb.cmp(&ta),
        o => o,
    }
}

/// The internal key that sorts before every version of `user_key`.
pub(crate) fn seek_key(user_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(user_key.len() + 8);
    k.extend_from_slice(user_key);
    k.extend_from_slice(&((MAX_SEQUENCE << 8) | u64::from(TYPE_VALUE)).to_le_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        let mut p = 0;
        assert_eq!(get_varint32(&[0x96, 0x01], &mut p), Some(150));
        assert_eq!(p, 2);
        let mut p = 0;
        assert_eq!(
            get_varint32(&[0xff, 0xff, 0xff, 0xff, 0x0f], &mut p),
            Some(u32::MAX)
        );
        let mut p = 0;
        assert_eq!(get_varint32(&[0xff, 0xff, 0xff, 0xff, 0x1f], &mut p), None);
        let mut p = 0;
        assert_eq!(get_varint32(&[0xff, 0xff], &mut p), None);
        assert_eq!(p, 0);
        let mut p = 0;
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(get_varint64(&max, &mut p), Some(u64::MAX));
        let mut p = 0;
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(get_varint64(&over, &mut p), None);
        let mut p = 0;
        assert_eq!(get_varint64(&[0x80; 12], &mut p), None);
        let mut p = 0;
        assert_eq!(get_length_prefixed(&[3, b'a', b'b'], &mut p), None);
        assert_eq!(
            get_length_prefixed(&[2, b'a', b'b'], &mut p),
            Some(&b"ab"[..])
        );
    }

    #[test]
    fn internal_order() {
        let mut a = b"k".to_vec();
        a.extend_from_slice(&((5u64 << 8) | 1).to_le_bytes());
        let mut b = b"k".to_vec();
        b.extend_from_slice(&((3u64 << 8) | 1).to_le_bytes());
        assert_eq!(cmp_internal(&a, &b), Ordering::Less);
        assert_eq!(cmp_internal(&seek_key(b"k"), &a), Ordering::Less);
        assert_eq!(cmp_internal(&b, &seek_key(b"l")), Ordering::Less);
        assert_eq!(user_key(&a), b"k");
    }
}
