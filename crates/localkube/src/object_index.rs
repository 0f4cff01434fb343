//! The parts of a stored object that are read without parsing it (uid, labels, selectable
//! field values, finalizers, owner references), packed into one allocation.
//!
//! A store holds one of these per object, and per object most of them hold a uid and a label
//! or two: as separate boxed strings those cost more in allocations than in bytes.

/// Counts of each section, then the end offset of every string, then one byte per owner
/// reference (blockOwnerDeletion), then the strings' bytes.
#[derive(Debug, Default)]
pub struct ObjectIndex(Box<[u8]>);

const COUNTS: usize = 4;
const HEADER: usize = COUNTS * 4;

/// An owner reference, as far as the garbage collector needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerRef<'a> {
    pub uid: &'a str,
    pub block_owner_deletion: bool,
}

/// The sections, in the order they are packed.
pub struct Parts<'a> {
    pub uid: &'a str,
    pub labels: &'a [(String, String)],
    pub fields: &'a [String],
    pub finalizers: &'a [&'a str],
    pub owners: &'a [OwnerRef<'a>],
}

fn count(n: usize) -> [u8; 4] {
    // Sections longer than u32::MAX cannot occur in a request body the server accepts.
    u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes()
}

impl ObjectIndex {
    pub fn new(parts: &Parts) -> ObjectIndex {
        let strings = std::iter::once(parts.uid)
            .chain(
                parts
                    .labels
                    .iter()
                    .flat_map(|(k, v)| [k.as_str(), v.as_str()]),
            )
            .chain(parts.fields.iter().map(String::as_str))
            .chain(parts.finalizers.iter().copied())
            .chain(parts.owners.iter().map(|o| o.uid));
        let n_strings = 1
            + 2 * parts.labels.len()
            + parts.fields.len()
            + parts.finalizers.len()
            + parts.owners.len();
        let mut text = Vec::new();
        let mut ends = Vec::with_capacity(n_strings * 4);
        for s in strings {
            text.extend_from_slice(s.as_bytes());
            ends.extend_from_slice(&count(text.len()));
        }
        let mut packed = Vec::with_capacity(HEADER + ends.len() + parts.owners.len() + text.len());
        for n in [
            parts.labels.len(),
            parts.fields.len(),
            parts.finalizers.len(),
            parts.owners.len(),
        ] {
            packed.extend_from_slice(&count(n));
        }
        packed.extend_from_slice(&ends);
        packed.extend(
            parts
                .owners
                .iter()
                .map(|o| u8::from(o.block_owner_deletion)),
        );
        packed.extend_from_slice(&text);
        ObjectIndex(packed.into_boxed_slice())
    }

    fn word(&self, at: usize) -> usize {
        self.0
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, |b| u32::from_le_bytes(b) as usize)
    }

    fn layout(&self) -> Layout {
        let counts: [usize; COUNTS] = std::array::from_fn(|i| self.word(i * 4));
        let [labels, fields, finalizers, owners] = counts;
        let strings = 1 + 2 * labels + fields + finalizers + owners;
        Layout {
            counts,
            flags: HEADER + strings * 4,
            text: HEADER + strings * 4 + owners,
        }
    }

    /// The `i`th string of all sections.
    fn string(&self, layout: &Layout, i: usize) -> &str {
        let start = if i == 0 {
            0
        } else {
            self.word(HEADER + (i - 1) * 4)
        };
        let end = self.word(HEADER + i * 4);
        // Built from &str pieces, so every range is whole UTF-8.
        self.0
            .get(layout.text + start..layout.text + end)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    pub fn uid(&self) -> &str {
        self.string(&self.layout(), 0)
    }

    pub fn labels(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        let layout = self.layout();
        (0..layout.counts[0]).map(move |i| {
            (
                self.string(&layout, 1 + 2 * i),
                self.string(&layout, 2 + 2 * i),
            )
        })
    }

    /// The value of the `i`th selectable field.
    pub fn field(&self, i: usize) -> Option<&str> {
        let layout = self.layout();
        let [labels, fields, ..] = layout.counts;
        (i < fields).then(|| self.string(&layout, 1 + 2 * labels + i))
    }

    pub fn finalizers(&self) -> impl ExactSizeIterator<Item = &str> {
        let layout = self.layout();
        let [labels, fields, finalizers, _] = layout.counts;
        let first = 1 + 2 * labels + fields;
        (first..first + finalizers).map(move |i| self.string(&layout, i))
    }

    pub fn owners(&self) -> impl ExactSizeIterator<Item = OwnerRef<'_>> {
        let layout = self.layout();
        let [labels, fields, finalizers, owners] = layout.counts;
        let first = 1 + 2 * labels + fields + finalizers;
        (0..owners).map(move |i| OwnerRef {
            uid: self.string(&layout, first + i),
            block_owner_deletion: self.0.get(layout.flags + i) == Some(&1),
        })
    }
}

/// Where each part of a packed index starts.
struct Layout {
    counts: [usize; COUNTS],
    flags: usize,
    text: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_reads_back() {
        let labels = [
            ("app".to_string(), "web".to_string()),
            ("tier".to_string(), String::new()),
        ];
        let fields = ["node-1".to_string(), "Running".to_string()];
        let owners = [
            OwnerRef {
                uid: "o-1",
                block_owner_deletion: true,
            },
            OwnerRef {
                uid: "ö-2",
                block_owner_deletion: false,
            },
        ];
        let index = ObjectIndex::new(&Parts {
            uid: "u-1",
            labels: &labels,
            fields: &fields,
            finalizers: &["a/b", "orphan"],
            owners: &owners,
        });
        assert_eq!(index.uid(), "u-1");
        assert_eq!(
            index.labels().collect::<Vec<_>>(),
            [("app", "web"), ("tier", "")]
        );
        assert_eq!(index.field(0), Some("node-1"));
        assert_eq!(index.field(1), Some("Running"));
        assert_eq!(index.field(2), None);
        assert_eq!(index.finalizers().collect::<Vec<_>>(), ["a/b", "orphan"]);
        assert_eq!(index.owners().collect::<Vec<_>>(), owners);
    }

    #[test]
    fn empty_sections_cost_only_the_header_and_the_uid() {
        let index = ObjectIndex::new(&Parts {
            uid: "",
            labels: &[],
            fields: &[],
            finalizers: &[],
            owners: &[],
        });
        assert_eq!(index.0.len(), HEADER + 4);
        assert_eq!(index.uid(), "");
        assert_eq!(index.labels().len(), 0);
        assert_eq!(index.finalizers().len(), 0);
        assert_eq!(index.owners().len(), 0);
        assert_eq!(ObjectIndex::default().uid(), "");
        assert_eq!(ObjectIndex::default().labels().len(), 0);
    }
}
