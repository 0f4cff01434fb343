//! The synthetic workload: object keys, Kubernetes-like JSON values, the operation mix, and
//! latency percentiles. Pure and deterministic (a fixed-seed PRNG), so every engine sees the
//! same bytes in the same order.

/// (group, plural) pairs the keys cycle through, so keys share prefixes as real ones do.
const RESOURCES: &[(&str, &str)] = &[
    ("", "configmaps"),
    ("", "pods"),
    ("apps", "deployments"),
    ("kubevirt.io", "virtualmachines"),
    ("kubevirt.io", "virtualmachineinstances"),
    ("cdi.kubevirt.io", "datavolumes"),
];

const NAMESPACES: usize = 40;

/// splitmix64: tiny, fast, good enough to spread keys and vary values.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..bound (bound > 0); modulo bias is irrelevant here.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

/// The store key of object `index`: group, plural, namespace, name joined by NUL, the layout
/// localkube's store would use (NUL cannot occur in any of the four parts).
pub fn object_key(index: u64) -> Vec<u8> {
    let (group, plural) = RESOURCES[(index % RESOURCES.len() as u64) as usize];
    let namespace = index / RESOURCES.len() as u64 % NAMESPACES as u64;
    format!("{group}\0{plural}\0ns-{namespace:02}\0object-{index:08}").into_bytes()
}

/// A Kubernetes-like JSON object of about `target_len` bytes (at least ~500; padded by an
/// annotation), with a resourceVersion and some random hex, so it is neither incompressible
/// nor trivially compressible.
pub fn object_json(index: u64, resource_version: u64, rng: &mut Rng, target_len: usize) -> Vec<u8> {
    let (group, plural) = RESOURCES[(index % RESOURCES.len() as u64) as usize];
    let namespace = index / RESOURCES.len() as u64 % NAMESPACES as u64;
    let uid = format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        rng.next_u64() as u32,
        rng.next_u64() as u16,
        rng.next_u64() as u16,
        rng.next_u64() as u16,
        rng.next_u64() & 0xFFFF_FFFF_FFFF
    );
    let api_version = if group.is_empty() {
        "v1".to_string()
    } else {
        format!("{group}/v1")
    };
    let replicas = rng.below(5) + 1;
    let mut json = format!(
        concat!(
            r#"{{"apiVersion":"{api}","kind":"{plural}","metadata":{{"name":"object-{index:08}","#,
            r#""namespace":"ns-{ns:02}","uid":"{uid}","resourceVersion":"{rv}","generation":{gen},"#,
            r#""creationTimestamp":"2026-01-01T00:00:00Z","labels":{{"app":"app-{app}","tier":"backend","#,
            r#""kubevirt.io/domain":"vm-{index}"}},"annotations":{{"bench/pad":""#
        ),
        api = api_version,
        plural = plural,
        index = index,
        ns = namespace,
        uid = uid,
        rv = resource_version,
        gen = resource_version % 97 + 1,
        app = index % 13,
    );
    let tail = format!(
        concat!(
            r#""}}}},"spec":{{"replicas":{replicas},"running":true,"template":{{"spec":{{"#,
            r#""domain":{{"cpu":{{"cores":{cores}}},"memory":{{"guest":"{mem}Mi"}}}}}}}}}},"#,
            r#""status":{{"phase":"Running","observedGeneration":{gen}}}}}"#
        ),
        replicas = replicas,
        cores = rng.below(8) + 1,
        mem = (rng.below(16) + 1) * 256,
        gen = resource_version % 97 + 1,
    );
    // Hex pad: half random, so the value is neither incompressible nor trivially so.
    let pad_len = target_len.saturating_sub(json.len() + tail.len());
    let mut pad = String::with_capacity(pad_len + 24);
    while pad.len() < pad_len {
        pad.push_str(&format!("{:016x}abcdefgh", rng.next_u64()));
    }
    pad.truncate(pad_len);
    json.push_str(&pad);
    json.push_str(&tail);
    json.into_bytes()
}

/// One write of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put { key: Vec<u8>, value: Vec<u8> },
    Delete { key: Vec<u8> },
}

/// Draws the writes of one batch: keys uniform in 0..key_space, a delete with probability
/// delete_percent/100, else an upsert carrying the next resourceVersion.
pub fn draw_batch(
    rng: &mut Rng,
    batch_size: usize,
    key_space: u64,
    delete_percent: u64,
    next_rv: &mut u64,
    value_len: usize,
) -> Vec<Op> {
    (0..batch_size)
        .map(|_| {
            let index = rng.below(key_space);
            *next_rv += 1;
            if rng.below(100) < delete_percent {
                Op::Delete {
                    key: object_key(index),
                }
            } else {
                Op::Put {
                    key: object_key(index),
                    value: object_json(index, *next_rv, rng, value_len),
                }
            }
        })
        .collect()
}

/// Nearest-rank percentile (p in 0..=100) of sorted samples; None when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_four_parts_and_are_unique() {
        let cases: &[(u64, &str)] = &[
            (0, "\0configmaps\0ns-00\0object-00000000"),
            (2, "apps\0deployments\0ns-00\0object-00000002"),
            (6, "\0configmaps\0ns-01\0object-00000006"),
            (245, "cdi.kubevirt.io\0datavolumes\0ns-00\0object-00000245"),
        ];
        for (index, want) in cases {
            assert_eq!(object_key(*index), want.as_bytes(), "index {index}");
        }
        let keys: std::collections::HashSet<_> = (0..10_000).map(object_key).collect();
        assert_eq!(keys.len(), 10_000);
    }

    #[test]
    fn values_are_json_of_about_the_target_length() {
        let mut rng = Rng::new(7);
        for target in [600usize, 1000, 1500] {
            for index in 0..50 {
                let value = object_json(index, 1000 + index, &mut rng, target);
                let text = std::str::from_utf8(&value).unwrap();
                assert!(text.starts_with('{') && text.ends_with('}'), "{text}");
                assert!(text.contains(&format!("\"resourceVersion\":\"{}\"", 1000 + index)));
                let len = value.len() as i64;
                assert!(
                    (len - target as i64).abs() <= 24,
                    "target {target} got {len}"
                );
                // Balanced braces: a cheap well-formedness check without a JSON parser.
                let opens = text.matches('{').count();
                assert_eq!(opens, text.matches('}').count(), "{text}");
            }
        }
    }

    #[test]
    fn batches_follow_the_delete_share_and_number_resource_versions() {
        let table: &[(u64, usize, usize)] = &[(0, 64, 0), (100, 64, 64), (25, 4000, 1000)];
        for (delete_percent, batch, expected_deletes) in table {
            let mut rng = Rng::new(1);
            let mut rv = 10;
            let ops = draw_batch(&mut rng, *batch, 500, *delete_percent, &mut rv, 600);
            assert_eq!(ops.len(), *batch);
            assert_eq!(rv, 10 + *batch as u64);
            let deletes = ops
                .iter()
                .filter(|op| matches!(op, Op::Delete { .. }))
                .count();
            let slack = expected_deletes / 10;
            assert!(
                deletes.abs_diff(*expected_deletes) <= slack,
                "{delete_percent}%: {deletes}"
            );
        }
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let table: &[(f64, f64)] = &[(0.0, 1.0), (50.0, 50.0), (99.0, 99.0), (100.0, 100.0)];
        for (p, want) in table {
            assert_eq!(percentile(&samples, *p), Some(*want), "p{p}");
        }
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[3.0], 99.0), Some(3.0));
    }
}
