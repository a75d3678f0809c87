//! Comparing secrets, token hashes and MACs in constant time.
//!
//! `==` on byte slices stops at the first difference, so the time it takes
//! tells an attacker who can measure it how much of a guess was right. Every
//! place that checks a presented secret, token hash or MAC against the
//! expected one goes through [`ct_eq`], which grep finds.

use subtle::ConstantTimeEq;

/// True if `a` and `b` are equal. The time taken depends on their lengths
/// only (which are not secret: a MAC, a hash or a token has a fixed length),
/// never on where they differ. Slices of different lengths are unequal.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::ct_eq;

    #[test]
    fn equal_slices_are_equal() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(&[7u8; 32], &[7u8; 32]));
        assert!(ct_eq(b"kw_0123", b"kw_0123"));
    }

    #[test]
    fn a_difference_anywhere_is_unequal() {
        let base = [0x5au8; 32];
        for at in [0, 1, 16, 31] {
            for bit in 0..8 {
                let mut other = base;
                other[at] ^= 1 << bit;
                assert!(!ct_eq(&base, &other), "byte {at} bit {bit}");
                assert!(!ct_eq(&other, &base), "byte {at} bit {bit}");
            }
        }
    }

    #[test]
    fn different_lengths_are_unequal() {
        let mac = [1u8; 32];
        assert!(!ct_eq(&mac, &mac[..31]), "a prefix is not the MAC");
        assert!(!ct_eq(&mac[..31], &mac));
        assert!(!ct_eq(&mac, b""));
        assert!(!ct_eq(b"", &mac));
        let mut longer = mac.to_vec();
        longer.push(1);
        assert!(!ct_eq(&mac, &longer), "a MAC with a byte added");
    }
}
