//! Content-defined chunking of large parts with fastcdc (v2020), its gear table seeded from the
//! repository key so that chunk boundaries do not fingerprint content.
//!
//! Only parts above the config's threshold (64 KiB by default: big CRDs and ConfigMaps) are
//! chunked; a one-line edit of a 1.4 MB CRD then stores one or two chunks, not the whole object.

use crate::format::config::Chunking;

/// Splits `data` into chunk ranges; a part at or under the threshold is one range.
pub fn chunk_ranges(data: &[u8], params: &Chunking, seed: u64) -> Vec<std::ops::Range<usize>> {
    if data.len() <= params.threshold as usize {
        return std::iter::once(0..data.len()).collect();
    }
    fastcdc::v2020::FastCDC::with_level_and_seed(
        data,
        params.min_size as usize,
        params.avg_size as usize,
        params.max_size as usize,
        fastcdc::v2020::Normalization::Level1,
        seed,
    )
    .map(|c| c.offset..c.offset + c.length)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_is_one_chunk_large_is_split_and_stable_under_edit() {
        let p = Chunking { threshold: 64 * 1024, min_size: 8 * 1024, avg_size: 16 * 1024, max_size: 64 * 1024 };
        assert_eq!(chunk_ranges(b"abc", &p, 1), vec![0..3]);
        let mut data = Vec::new();
        let mut x: u64 = 1;
        for _ in 0..400_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            data.push(b"abcdefghij\n: -"[(x >> 59) as usize % 14]);
        }
        let a = chunk_ranges(&data, &p, 42);
        assert!(a.len() > 5);
        assert_eq!(a.last().unwrap().end, data.len());
        let mut edited = data.clone();
        edited[200_000] ^= 1;
        let b = chunk_ranges(&edited, &p, 42);
        let same = a.iter().filter(|r| b.contains(r)).count();
        assert!(same + 3 >= a.len(), "an edit changes at most a few chunks");
        assert_ne!(chunk_ranges(&data, &p, 43), a, "the seed moves boundaries");
    }
}
