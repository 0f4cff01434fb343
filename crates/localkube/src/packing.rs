//! Stored JSON, compressed with a zstd dictionary that each table trains on its first objects.
//!
//! Objects of one resource type repeat most of their bytes: the keys, the apiVersion and kind,
//! managedFields, timestamps' shape. A dictionary of those makes a small object's stored form
//! about a quarter of its JSON, which is most of what the store holds per object. Tables with
//! fewer objects than a sample never get a dictionary and keep plain JSON.

use std::cell::RefCell;
use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use zstd::zstd_safe::{self, CCtx, CDict, DCtx, DDict};

/// How many objects a table stores before its dictionary is trained from them.
pub const SAMPLE_OBJECTS: usize = 256;
/// Larger objects are not sampled, and training stops collecting at this many bytes, so that
/// training (once per table, in the write that completes the samples) takes 20–80 ms at most.
const SAMPLE_MAX_OBJECT_BYTES: usize = 16 * 1024;
const SAMPLE_MAX_BYTES: usize = 1024 * 1024;
/// The dictionary's size in bytes; larger ones gain almost nothing on small objects.
const DICTIONARY_BYTES: usize = 4096;
/// zstd's fastest level: its small hash tables keep each prepared dictionary and context small,
/// and with a dictionary it compresses small objects about as well as the default level.
const LEVEL: i32 = 1;

/// A trained dictionary, prepared for compression and decompression.
pub struct Dictionary {
    compress: CDict<'static>,
    decompress: DDict<'static>,
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dictionary").finish_non_exhaustive()
    }
}

impl Dictionary {
    /// Trains a dictionary on sample objects; None when zstd finds too little to learn.
    pub fn train(samples: &[Bytes]) -> Option<Arc<Dictionary>> {
        let dict = zstd::dict::from_samples(samples, DICTIONARY_BYTES).ok()?;
        Some(Arc::new(Dictionary {
            compress: CDict::try_create(&dict, LEVEL)?,
            decompress: DDict::try_create(&dict)?,
        }))
    }
}

thread_local! {
    // Contexts are reused: creating one per object would cost more than compressing it.
    static COMPRESSOR: RefCell<CCtx<'static>> = RefCell::new(CCtx::create());
    static DECOMPRESSOR: RefCell<DCtx<'static>> = RefCell::new(DCtx::create());
}

/// An object's JSON as the store keeps it.
#[derive(Debug)]
pub enum Body {
    Plain(Bytes),
    Packed {
        frame: Box<[u8]>,
        dictionary: Arc<Dictionary>,
    },
}

impl Body {
    /// Compresses `json` with the table's dictionary, keeping it plain when there is none or
    /// compression would not make it smaller.
    pub fn new(json: Bytes, dictionary: Option<&Arc<Dictionary>>) -> Body {
        let Some(dictionary) = dictionary else {
            return Body::Plain(json);
        };
        let mut frame = Vec::with_capacity(zstd_safe::compress_bound(json.len()));
        let packed = COMPRESSOR
            .with_borrow_mut(|c| c.compress_using_cdict(&mut frame, &json, &dictionary.compress));
        match packed {
            Ok(n) if n < json.len() => Body::Packed {
                frame: frame.into_boxed_slice(),
                dictionary: dictionary.clone(),
            },
            _ => Body::Plain(json),
        }
    }

    /// The JSON, decompressed when it is packed.
    pub fn json(&self) -> Bytes {
        match self {
            Body::Plain(json) => json.clone(),
            Body::Packed { .. } => {
                let mut json = Vec::new();
                self.append_json(&mut json);
                Bytes::from(json)
            }
        }
    }

    /// Appends the JSON to `out`, decompressing straight into it.
    pub fn append_json(&self, out: &mut Vec<u8>) {
        match self {
            Body::Plain(json) => out.extend_from_slice(json),
            Body::Packed { frame, dictionary } => unpack_into(frame, dictionary, out),
        }
    }

    /// The length of the JSON, without decompressing it.
    pub fn json_len(&self) -> usize {
        match self {
            Body::Plain(json) => json.len(),
            Body::Packed { frame, .. } => content_size(frame),
        }
    }

    /// Bytes held for the object's JSON.
    pub fn stored_len(&self) -> usize {
        match self {
            Body::Plain(json) => json.len(),
            Body::Packed { frame, .. } => frame.len(),
        }
    }
}

fn content_size(frame: &[u8]) -> usize {
    // Every frame is written here with its content size.
    zstd_safe::get_frame_content_size(frame)
        .ok()
        .flatten()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
}

fn unpack_into(frame: &[u8], dictionary: &Dictionary, out: &mut Vec<u8>) {
    let start = out.len();
    out.reserve(content_size(frame));
    let mut cursor = Cursor::new(out);
    cursor.set_position(start as u64);
    let done = DECOMPRESSOR
        .with_borrow_mut(|d| d.decompress_using_ddict(&mut cursor, frame, &dictionary.decompress));
    // Only a bug could make a frame this store wrote undecodable. Going on with empty JSON
    // could let a reader write the emptiness back over the object.
    if let Err(code) = done {
        panic!(
            "stored object does not decompress: {}",
            zstd_safe::get_error_name(code)
        );
    }
}

/// Where a table is in getting its dictionary.
#[derive(Debug)]
pub enum Trainer {
    /// Collecting the first objects (their JSON shares the stored bytes), and their total size.
    Sampling(Vec<Bytes>, usize),
    /// A writer took the samples and is training outside the store's lock.
    Training,
    Ready(Arc<Dictionary>),
    /// Training failed; the table keeps plain JSON.
    Off,
}

impl Default for Trainer {
    fn default() -> Self {
        Trainer::Sampling(Vec::new(), 0)
    }
}

impl Trainer {
    pub fn dictionary(&self) -> Option<&Arc<Dictionary>> {
        match self {
            Trainer::Ready(d) => Some(d),
            _ => None,
        }
    }

    /// Adds a stored object's JSON to the samples; returns them all when there are enough to
    /// train on, for the caller to train without holding the store's lock.
    pub fn sample(&mut self, json: &Bytes) -> Option<Vec<Bytes>> {
        if json.len() > SAMPLE_MAX_OBJECT_BYTES {
            return None;
        }
        let Trainer::Sampling(samples, bytes) = self else {
            return None;
        };
        samples.push(json.clone());
        *bytes += json.len();
        if samples.len() < SAMPLE_OBJECTS && *bytes < SAMPLE_MAX_BYTES {
            return None;
        }
        match std::mem::replace(self, Trainer::Training) {
            Trainer::Sampling(samples, _) => Some(samples),
            _ => None,
        }
    }

    pub fn finish(&mut self, dictionary: Option<Arc<Dictionary>>) {
        *self = match dictionary {
            Some(d) => Trainer::Ready(d),
            None => Trainer::Off,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(i: usize) -> Bytes {
        Bytes::from(format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"cm-{i}","namespace":"default","uid":"{:08x}-7d1c-4b5e-9a3f-2c6e8f0a1b2c","resourceVersion":"{}","labels":{{"app":"web"}}}},"data":{{"key":"value-{}"}}}}"#,
            i * 2_654_435_761 % 4_294_967_291,
            i + 10,
            i * 7919
        ))
    }

    #[test]
    fn packed_objects_round_trip_and_shrink() {
        let samples: Vec<Bytes> = (0..SAMPLE_OBJECTS).map(object).collect();
        let dictionary = Dictionary::train(&samples).expect("similar objects train a dictionary");
        for i in [0, 1, 5_000, 99_999] {
            let json = object(i);
            let body = Body::new(json.clone(), Some(&dictionary));
            assert!(matches!(body, Body::Packed { .. }));
            assert!(body.stored_len() * 2 < json.len(), "{}", body.stored_len());
            assert_eq!(body.json(), json);
        }
    }

    #[test]
    fn without_a_dictionary_or_a_gain_the_json_stays_plain() {
        let json = object(1);
        assert!(matches!(Body::new(json.clone(), None), Body::Plain(_)));
        let samples: Vec<Bytes> = (0..SAMPLE_OBJECTS).map(object).collect();
        let dictionary = Dictionary::train(&samples).unwrap();
        let tiny = Bytes::from_static(b"{}");
        let body = Body::new(tiny.clone(), Some(&dictionary));
        assert!(matches!(body, Body::Plain(_)));
        assert_eq!(body.json(), tiny);
    }

    #[test]
    fn large_objects_are_not_sampled_and_samples_are_bounded_in_bytes() {
        let mut trainer = Trainer::default();
        let huge = Bytes::from(vec![b' '; SAMPLE_MAX_OBJECT_BYTES + 1]);
        for _ in 0..SAMPLE_OBJECTS * 2 {
            assert!(trainer.sample(&huge).is_none());
        }
        let big = Bytes::from(vec![b' '; SAMPLE_MAX_OBJECT_BYTES]);
        let handed = (0..SAMPLE_OBJECTS)
            .find_map(|_| trainer.sample(&big))
            .unwrap();
        assert_eq!(handed.len(), SAMPLE_MAX_BYTES / SAMPLE_MAX_OBJECT_BYTES);
    }

    #[test]
    fn packed_json_appends_and_reports_its_length() {
        let samples: Vec<Bytes> = (0..SAMPLE_OBJECTS).map(object).collect();
        let dictionary = Dictionary::train(&samples).unwrap();
        let body = Body::new(object(7), Some(&dictionary));
        assert_eq!(body.json_len(), object(7).len());
        let mut out = b"[".to_vec();
        body.append_json(&mut out);
        Body::Plain(object(8)).append_json(&mut out);
        assert_eq!(out, [&b"["[..], &object(7), &object(8)].concat());
    }

    #[test]
    fn the_trainer_hands_out_its_samples_once() {
        let mut trainer = Trainer::default();
        let mut handed = 0;
        for i in 0..SAMPLE_OBJECTS * 2 {
            if let Some(samples) = trainer.sample(&object(i)) {
                assert_eq!(samples.len(), SAMPLE_OBJECTS);
                handed += 1;
            }
        }
        assert_eq!(handed, 1);
        assert!(trainer.dictionary().is_none());
        trainer.finish(None);
        assert!(matches!(trainer, Trainer::Off));
        assert!(trainer.sample(&object(0)).is_none());
    }
}
