//! Measuring tools: the process-wide clock every timestamp is taken on, a fixed-size
//! latency histogram, and a bitset of sequence numbers for counting lost and
//! duplicated messages.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The instant all timestamps count from. Senders and receivers live in this one
/// process, so a send time written into a message can be compared with the receive time.
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the process-wide epoch.
pub fn now_ns() -> u64 {
    let epoch = EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Values below this are counted exactly (one bucket per microsecond).
const LINEAR: u64 = 128;
/// Buckets per power of two above [`LINEAR`]: a relative error of at most 1/64.
const SUB_BUCKETS: u64 = 64;
/// Enough buckets for every `u64` microsecond value.
const BUCKETS: usize = (LINEAR + (64 - 7) * SUB_BUCKETS) as usize;

/// A log-linear histogram of durations with microsecond resolution and at most 1.6 %
/// error, of fixed size (about 30 KB) whatever it counts, so recording millions of
/// samples neither allocates nor grows.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            max_us: 0,
        }
    }
}

impl Histogram {
    /// Records one duration given in nanoseconds.
    pub fn record_ns(&mut self, ns: u64) {
        let us = ns / 1_000;
        self.counts[bucket_of(us)] += 1;
        self.total += 1;
        self.max_us = self.max_us.max(us);
    }

    /// Records one duration.
    pub fn record(&mut self, duration: Duration) {
        self.record_ns(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Adds another histogram's samples to this one.
    pub fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max_us = self.max_us.max(other.max_us);
    }

    /// How many samples were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0.0–1.0) in milliseconds; `None` without samples.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        // The rank of the sample sought, 1-based; `q` is within 0..=1 by construction.
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let us = value_of(bucket).min(self.max_us);
                return Some(us as f64 / 1_000.0);
            }
        }
        Some(self.max_us as f64 / 1_000.0)
    }

    /// The largest sample in milliseconds; `None` without samples.
    pub fn max_ms(&self) -> Option<f64> {
        (self.total > 0).then(|| self.max_us as f64 / 1_000.0)
    }

    /// `{"count", "p50_ms", "p99_ms", "p999_ms", "max_ms"}` for the JSON report.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "count": self.total,
            "p50_ms": self.quantile_ms(0.5),
            "p99_ms": self.quantile_ms(0.99),
            "p999_ms": self.quantile_ms(0.999),
            "max_ms": self.max_ms(),
        })
    }
}

/// The bucket a microsecond value falls in.
fn bucket_of(us: u64) -> usize {
    if us < LINEAR {
        return usize::try_from(us).unwrap_or(0);
    }
    let exponent = 63 - u64::from(us.leading_zeros()); // >= 7
    let sub = (us >> (exponent - 6)) & (SUB_BUCKETS - 1);
    usize::try_from(LINEAR + (exponent - 7) * SUB_BUCKETS + sub).unwrap_or(BUCKETS - 1)
}

/// The middle of a bucket's range, in microseconds.
fn value_of(bucket: usize) -> u64 {
    let bucket = bucket as u64;
    if bucket < LINEAR {
        return bucket;
    }
    let exponent = (bucket - LINEAR) / SUB_BUCKETS + 7;
    let sub = (bucket - LINEAR) % SUB_BUCKETS;
    let width = 1u64 << (exponent - 6);
    ((SUB_BUCKETS + sub) << (exponent - 6)) + width / 2
}

/// The most sequence numbers one sender may use in one phase; a number beyond it in a
/// message is treated as garbage, so a corrupt frame cannot make a set allocate without
/// bound.
pub const MAX_SEQ: u64 = 50_000_000;

/// A growable bitset of sequence numbers.
#[derive(Default, Clone)]
pub struct SeqSet {
    words: Vec<u64>,
}

impl SeqSet {
    /// Adds `seq`; `false` when it was already there or is beyond [`MAX_SEQ`].
    pub fn insert(&mut self, seq: u64) -> bool {
        if seq >= MAX_SEQ {
            return false;
        }
        let (word, bit) = (usize::try_from(seq / 64).unwrap_or(0), seq % 64);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let mask = 1u64 << bit;
        let fresh = self.words[word] & mask == 0;
        self.words[word] |= mask;
        fresh
    }

    /// How many numbers are in the set.
    pub fn len(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// How many numbers of `self` are missing from `other`.
    pub fn missing_from(&self, other: &Self) -> u64 {
        self.words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let theirs = other.words.get(i).copied().unwrap_or(0);
                u64::from((w & !theirs).count_ones())
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_the_histograms_precision() {
        let mut h = Histogram::default();
        for us in 1..=10_000u64 {
            h.record_ns(us * 1_000);
        }
        let p50 = h.quantile_ms(0.5).unwrap();
        let p99 = h.quantile_ms(0.99).unwrap();
        assert!((p50 - 5.0).abs() / 5.0 < 0.02, "p50 {p50}");
        assert!((p99 - 9.9).abs() / 9.9 < 0.02, "p99 {p99}");
        assert_eq!(h.max_ms(), Some(10.0));
        assert_eq!(Histogram::default().quantile_ms(0.5), None);
    }

    #[test]
    fn every_bucket_maps_back_into_its_own_range() {
        for us in (0..2_000_000u64).step_by(997) {
            let value = value_of(bucket_of(us));
            let error = value.abs_diff(us) as f64 / us.max(1) as f64;
            assert!(error <= 1.0 / 64.0, "{us} -> {value}");
        }
    }

    #[test]
    fn a_seq_set_counts_duplicates_and_gaps() {
        let mut sent = SeqSet::default();
        let mut got = SeqSet::default();
        for seq in 0..200 {
            sent.insert(seq);
        }
        for seq in (0..200).filter(|s| s % 50 != 7) {
            assert!(got.insert(seq));
        }
        assert!(!got.insert(3));
        assert_eq!(sent.missing_from(&got), 4);
        assert_eq!(got.missing_from(&sent), 0);
        assert_eq!(got.len(), 196);
        assert!(!got.insert(MAX_SEQ));
    }
}
