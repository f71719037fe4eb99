//! # wordcount: map-reduce over a text corpus
//!
//! The classic data job. wisp splits every file under `--data` into chunks of
//! about `--chunk-size` bytes, cut at line ends, and calls `count_words` once
//! per chunk, in parallel. It then calls `merge_counts` once with the list of
//! all the per-chunk results, which adds them up and puts a summary first.
//!
//! ```sh
//! wisp submit examples/wordcount --function count_words \
//!     --data examples/data/first-folio --chunk-size 256KiB --reduce merge_counts
//! ```
//!
//! A word is a maximal run of alphanumeric characters (`char::is_alphanumeric`,
//! so letters and digits of any script), lowercased with `str::to_lowercase`:
//! `"Émile's café"` holds the words `émile`, `s` and `café`.
//!
//! Counting allocates a `String` only for each *distinct* word of a chunk,
//! never per occurrence: words that are already lowercase ASCII are looked up
//! as slices of the chunk, and the others are lowercased into one reused
//! buffer first.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

/// How many of the most frequent words the summary lists.
pub const TOP: usize = 10;

/// The merged result: the summary fields come first, so that the start of
/// the JSON output is readable on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WordCounts {
    /// Number of word occurrences.
    pub total_words: u64,
    /// Number of different words.
    pub distinct_words: u64,
    /// The most frequent words, most frequent first; ties in alphabetical
    /// order.
    pub top: Vec<(String, u64)>,
    /// Every word with its count, in alphabetical order.
    pub counts: BTreeMap<String, u64>,
}

/// Counts the words of one chunk: text cut from a local file, or a part of
/// an object that the call reads from storage.
#[wisp_guest::function]
fn count_words(chunk: wisp_guest::DataChunk) -> wisp_guest::Result<BTreeMap<String, u64>> {
    Ok(count(&chunk.text()?))
}

/// Adds up the counts of all chunks and summarises them.
#[wisp_guest::function]
fn merge_counts(parts: Vec<BTreeMap<String, u64>>) -> WordCounts {
    summarise(merge(parts))
}

/// Counts the words of `text`.
pub fn count(text: &str) -> BTreeMap<String, u64> {
    let mut counts: HashMap<String, u64, BuildHasherDefault<WordHasher>> = HashMap::default();
    for_each_word(text, |word| match counts.get_mut(word) {
        Some(n) => *n += 1,
        None => {
            counts.insert(word.to_owned(), 1);
        }
    });
    counts.into_iter().collect()
}

/// Calls `f` with every word of `text`, in order, lowercased.
pub fn for_each_word(text: &str, mut f: impl FnMut(&str)) {
    let bytes = text.as_bytes();
    let mut lowered = String::new();
    let mut i = 0;
    while i < bytes.len() {
        // Skip to the start of the next word.
        let b = bytes[i];
        if b.is_ascii() {
            if !b.is_ascii_alphanumeric() {
                i += 1;
                continue;
            }
        } else {
            let c = char_at(text, i);
            if !c.is_alphanumeric() {
                i += c.len_utf8();
                continue;
            }
        }
        // Find its end, noting whether it is already lowercase ASCII.
        let start = i;
        let mut plain = true;
        while i < bytes.len() {
            let b = bytes[i];
            if b.is_ascii_lowercase() || b.is_ascii_digit() {
                i += 1;
            } else if b.is_ascii_uppercase() {
                plain = false;
                i += 1;
            } else if b.is_ascii() {
                break;
            } else {
                let c = char_at(text, i);
                if !c.is_alphanumeric() {
                    break;
                }
                plain = false;
                i += c.len_utf8();
            }
        }
        let word = &text[start..i];
        if plain {
            f(word);
        } else {
            lowered.clear();
            if word.is_ascii() {
                lowered.extend(word.bytes().map(|b| char::from(b.to_ascii_lowercase())));
            } else {
                // `str::to_lowercase` knows the few rules that depend on the
                // position in the word (the Greek final sigma).
                lowered.push_str(&word.to_lowercase());
            }
            f(&lowered);
        }
    }
}

/// The character that starts at byte `i` of `text`, a char boundary.
fn char_at(text: &str, i: usize) -> char {
    text[i..].chars().next().expect("a character starts here")
}

/// Adds up per-chunk counts.
pub fn merge(parts: Vec<BTreeMap<String, u64>>) -> BTreeMap<String, u64> {
    if parts.len() <= 1 {
        return parts.into_iter().next().unwrap_or_default();
    }
    let mut total: HashMap<String, u64, BuildHasherDefault<WordHasher>> = HashMap::default();
    for part in parts {
        for (word, n) in part {
            *total.entry(word).or_insert(0) += n;
        }
    }
    total.into_iter().collect()
}

/// Puts the summary in front of merged counts.
pub fn summarise(counts: BTreeMap<String, u64>) -> WordCounts {
    let mut ranked: Vec<(&String, u64)> = counts.iter().map(|(w, &n)| (w, n)).collect();
    let by_rank = |a: &(&String, u64), b: &(&String, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0));
    if ranked.len() > TOP {
        ranked.select_nth_unstable_by(TOP - 1, by_rank);
        ranked.truncate(TOP);
    }
    ranked.sort_unstable_by(by_rank);
    WordCounts {
        total_words: counts.values().sum(),
        distinct_words: counts.len() as u64,
        top: ranked.into_iter().map(|(w, n)| (w.clone(), n)).collect(),
        counts,
    }
}

/// A quick hasher for short words (a multiply-rotate mix over 8-byte
/// words). The counts are keyed by untrusted text only inside one call, so
/// resistance to chosen collisions buys nothing here.
#[derive(Default)]
struct WordHasher(u64);

impl WordHasher {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;

    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(26) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut blocks = bytes.chunks_exact(8);
        for block in &mut blocks {
            self.mix(u64::from_le_bytes(block.try_into().expect("8 bytes")));
        }
        let rest = blocks.remainder();
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        self.mix(u64::from_le_bytes(last) ^ ((bytes.len() as u64) << 56));
    }

    fn write_u8(&mut self, n: u8) {
        self.mix(u64::from(n));
    }

    fn finish(&self) -> u64 {
        // Fold the high bits, which the multiplication mixed best, into the
        // low ones that the table indexes by.
        self.0 ^ (self.0 >> 29)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for_each_word(text, |w| out.push(w.to_owned()));
        out
    }

    fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|&(w, n)| (w.to_owned(), n)).collect()
    }

    #[test]
    fn punctuation_separates_words() {
        assert_eq!(
            words("Who's there?  Nay, answer me: stand & unfold--yourself!"),
            [
                "who", "s", "there", "nay", "answer", "me", "stand", "unfold", "yourself"
            ]
        );
        assert_eq!(words("end."), ["end"]);
        assert_eq!(words("...!?"), Vec::<String>::new());
    }

    #[test]
    fn words_are_lowercased() {
        assert_eq!(words("The THE the tHe"), ["the", "the", "the", "the"]);
        assert_eq!(count("The THE the tHe"), counts(&[("the", 4)]));
    }

    #[test]
    fn unicode_letters_are_word_characters() {
        assert_eq!(words("Émile's café"), ["émile", "s", "café"]);
        assert_eq!(words("Cæsar, ÆSOP"), ["cæsar", "æsop"]);
        assert_eq!(words("Straße—ΟΔΥΣΣΕΥΣ"), ["straße", "οδυσσευς"]);
        assert_eq!(words("日本語 テキスト"), ["日本語", "テキスト"]);
        // Spaces and symbols outside ASCII separate words too.
        assert_eq!(words("a\u{a0}b\u{2014}c“d”"), ["a", "b", "c", "d"]);
    }

    #[test]
    fn digits_are_word_characters() {
        assert_eq!(
            words("Act 3, scene 2: 1623 copies; 2nd folio"),
            ["act", "3", "scene", "2", "1623", "copies", "2nd", "folio"]
        );
        assert_eq!(words("3.14"), ["3", "14"]);
    }

    #[test]
    fn empty_and_blank_text_has_no_words() {
        assert!(count("").is_empty());
        assert!(count(" \n\t\r\n  -- \n").is_empty());
    }

    #[test]
    fn words_at_both_ends_of_the_text_count() {
        assert_eq!(words("first\nmiddle\nlast"), ["first", "middle", "last"]);
    }

    #[test]
    fn counts_a_chunk() {
        let chunk: wisp_guest::DataChunk = serde_json::from_str(
            r#"{"source": "a.txt", "offset": 0,
                "text": "To be, or not to be:\nthat is the question.\n"}"#,
        )
        .unwrap();
        assert_eq!(
            count_words(chunk).unwrap(),
            counts(&[
                ("be", 2),
                ("is", 1),
                ("not", 1),
                ("or", 1),
                ("question", 1),
                ("that", 1),
                ("the", 1),
                ("to", 2)
            ])
        );
    }

    #[test]
    fn a_chunk_needs_only_its_text() {
        let chunk: wisp_guest::DataChunk = serde_json::from_str(r#"{"text": "x y"}"#).unwrap();
        assert_eq!((chunk.source(), chunk.offset()), ("", 0));
    }

    #[test]
    fn merging_adds_counts_and_ranks_the_top() {
        let merged = merge_counts(vec![
            counts(&[("b", 3), ("a", 1), ("c", 2)]),
            counts(&[]),
            counts(&[("a", 2), ("d", 3)]),
        ]);
        assert_eq!(merged.total_words, 11);
        assert_eq!(merged.distinct_words, 4);
        assert_eq!(
            merged.counts,
            counts(&[("a", 3), ("b", 3), ("c", 2), ("d", 3)])
        );
        // Ties are broken alphabetically.
        let top: Vec<(&str, u64)> = merged.top.iter().map(|(w, n)| (w.as_str(), *n)).collect();
        assert_eq!(top, [("a", 3), ("b", 3), ("d", 3), ("c", 2)]);
    }

    #[test]
    fn the_top_holds_ten_words() {
        let text: String = (0..30u64)
            .flat_map(|i| std::iter::repeat_n(format!("w{i:02} "), i as usize + 1))
            .collect();
        let merged = merge_counts(vec![count(&text)]);
        assert_eq!(merged.distinct_words, 30);
        assert_eq!(merged.total_words, (1..=30).sum::<u64>());
        let top: Vec<&str> = merged.top.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(
            top,
            [
                "w29", "w28", "w27", "w26", "w25", "w24", "w23", "w22", "w21", "w20"
            ]
        );
        assert_eq!(merged.top[0].1, 30);
    }

    #[test]
    fn merging_nothing_gives_an_empty_result() {
        let merged = merge_counts(Vec::new());
        assert_eq!((merged.total_words, merged.distinct_words), (0, 0));
        assert!(merged.top.is_empty() && merged.counts.is_empty());
    }

    #[test]
    fn the_summary_comes_first_in_json() {
        let json = serde_json::to_string(&merge_counts(vec![counts(&[("a", 1)])])).unwrap();
        assert_eq!(
            json,
            r#"{"total_words":1,"distinct_words":1,"top":[["a",1]],"counts":{"a":1}}"#
        );
    }

    #[test]
    fn chunked_counts_match_whole_counts() {
        let text = "Thunder and Lightning. Enter three Witches.\nWhen shall we three meet againe?\n\
                    In Thunder, Lightning, or in Raine?\nWhen the Hurley-burley's done,\n";
        let whole = count(text);
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let parts = lines.chunks(2).map(|c| count(&c.concat())).collect();
        assert_eq!(merge(parts), whole);
    }
}
