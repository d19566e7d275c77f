//! A latency histogram in the manner of HdrHistogram, written out by hand:
//! logarithmic buckets, each split into [`SUB_BUCKETS`] linear ones, so any
//! recorded value is known to within 1/64 (1.6 %) of itself, from one
//! nanosecond to centuries, in a fixed 30 KiB.

/// Linear sub-buckets per power of two (6 bits of precision).
const SUB_BITS: u32 = 6;
const SUB_BUCKETS: usize = 1 << SUB_BITS;
/// Values below `2 * SUB_BUCKETS` get a bucket each; every power of two
/// above adds `SUB_BUCKETS` more, up to 2^63.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB_BUCKETS;

/// Counts of values (nanoseconds) in log-linear buckets.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max: 0,
        }
    }

    fn index(value: u64) -> usize {
        if value < 2 * SUB_BUCKETS as u64 {
            return value as usize;
        }
        let exp = 63 - value.leading_zeros() - SUB_BITS;
        let mantissa = (value >> exp) as usize; // in SUB_BUCKETS..2 * SUB_BUCKETS
        exp as usize * SUB_BUCKETS + mantissa
    }

    /// The highest value that falls in bucket `index`.
    fn highest(index: usize) -> u64 {
        if index < 2 * SUB_BUCKETS {
            return index as u64;
        }
        let exp = (index / SUB_BUCKETS - 1) as u32;
        let mantissa = (index % SUB_BUCKETS + SUB_BUCKETS) as u64;
        ((mantissa + 1) << exp) - 1
    }

    /// Counts one value.
    pub fn record(&mut self, value: u64) {
        let i = Self::index(value).min(BUCKETS - 1);
        self.counts[i] += 1;
        self.total += 1;
        self.max = self.max.max(value);
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// How many values were recorded.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The largest value recorded (exact), 0 if none.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1): the highest value of the bucket
    /// that holds the `ceil(q * len)`-th smallest value, never above the
    /// maximum. 0 if empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::highest(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut last = None;
        for v in (0..5000u64).chain((1..40).map(|s| (1u64 << s) + 12345)) {
            let i = Histogram::index(v);
            assert!(Histogram::highest(i) >= v, "{v}");
            if i > 0 {
                assert!(Histogram::highest(i - 1) < v, "{v}");
            }
            if v >= 128 {
                let width = Histogram::highest(i) - Histogram::highest(i - 1);
                assert!(width as f64 <= v as f64 / 63.0, "{v}: width {width}");
            }
            if let Some(l) = last {
                assert!(i >= l);
            }
            last = Some(i);
        }
        assert!(Histogram::index(u64::MAX) < BUCKETS);
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 - 5_000_000.0).abs() / 5_000_000.0 < 0.02, "{p50}");
        let p99 = h.quantile(0.99) as f64;
        assert!((p99 - 9_900_000.0).abs() / 9_900_000.0 < 0.02, "{p99}");
        assert_eq!(h.quantile(1.0), 10_000_000);
        assert_eq!(h.total, 10_000);
        let mut other = Histogram::new();
        other.record(1);
        h.merge(&other);
        assert_eq!(h.total, 10_001);
        assert_eq!(h.quantile(0.0), 1);
    }
}
