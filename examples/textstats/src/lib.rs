//! # textstats: a profile of a text corpus
//!
//! What one usually wants to know about a pile of text before working with
//! it: how big it is in bytes, characters, lines, words and sentences, how
//! long its lines and words are, where its longest line is, and how often
//! each letter occurs. `stats` profiles one chunk; `merge_stats` adds the
//! profiles of all chunks up and computes the averages from the totals.
//!
//! ```sh
//! wisp submit examples/textstats --function stats \
//!     --data examples/data/first-folio --chunk-size 256KiB --reduce merge_stats
//! ```
//!
//! Definitions, chosen so that the profile of a whole file is the merge of
//! the profiles of its chunks whenever the chunks are cut at line ends:
//!
//! - a *line* ends at `\n` (a final line without one counts too); its length
//!   is in characters and leaves out the `\n` and a `\r` before it;
//! - a *blank line* holds nothing but whitespace;
//! - a *word* is a maximal run of alphanumeric characters, as in the
//!   `wordcount` example;
//! - a *sentence* end is a run of `.`, `!` or `?` that follows a word
//!   (possibly through closing quotes or brackets) and is followed by
//!   whitespace, a closing quote or bracket, or the end of the text. This is
//!   a heuristic: abbreviations such as "Mr." or the speaker tags of a play
//!   ("Ham.") count as sentence ends;
//! - *letters* counts the ASCII letters a–z, folding case; `other_letters`
//!   counts every other alphabetic character (é, æ, ß, …).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One chunk of a data file, as wisp hands it to a mapped function.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Chunk {
    /// The file (or storage key) that the chunk was cut from.
    #[serde(default)]
    pub source: String,
    /// Byte offset of the chunk's first byte in that file.
    #[serde(default)]
    pub offset: u64,
    /// The chunk's text: whole lines.
    pub text: String,
}

/// The profile of a chunk, or of everything merged so far. The fields are
/// in the order a reader wants them: the totals first, the long lists last.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Number of distinct sources (files) profiled.
    pub sources: u64,
    /// Number of chunks profiled.
    pub chunks: u64,
    pub bytes: u64,
    pub characters: u64,
    pub lines: u64,
    pub blank_lines: u64,
    pub words: u64,
    pub sentences: u64,
    /// Means computed from the totals.
    pub averages: Averages,
    /// The longest line; of equally long ones, the first by source and
    /// offset.
    pub longest_line: Option<Line>,
    /// The longest word, lowercased as in `wordcount`, and its length in
    /// characters; of equally long ones, the first alphabetically.
    pub longest_word: Option<(String, u64)>,
    /// Occurrences of each letter a–z, either case.
    pub letters: BTreeMap<char, u64>,
    /// Alphabetic characters outside a–z and A–Z.
    pub other_letters: u64,
    /// Characters in lines, leaving out the line ends: for the mean line
    /// length.
    pub line_characters: u64,
    /// Characters in words: for the mean word length.
    pub word_characters: u64,
    /// The names of the sources, sorted.
    pub source_names: Vec<String>,
}

/// Where the longest line is and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub source: String,
    /// Byte offset of the line's start in its source.
    pub offset: u64,
    /// Length in characters.
    pub characters: u64,
    pub text: String,
}

/// Means over the whole profile; zero where there is nothing to divide by.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Averages {
    /// Characters per line, not counting line ends.
    pub line_length: f64,
    pub words_per_line: f64,
    /// Words per non-blank line.
    pub words_per_text_line: f64,
    pub words_per_sentence: f64,
    /// Characters per word.
    pub word_length: f64,
}

/// Profiles one chunk.
#[wisp_guest::function]
fn stats(chunk: wisp_guest::DataChunk) -> wisp_guest::Result<Stats> {
    let text = chunk.text()?.into_owned();
    Ok(profile(&Chunk {
        source: chunk.source().to_owned(),
        offset: chunk.offset(),
        text,
    }))
}

/// Merges the profiles of any number of chunks.
#[wisp_guest::function]
fn merge_stats(parts: Vec<Stats>) -> Stats {
    merge(parts)
}

/// Profiles the text of `chunk`.
pub fn profile(chunk: &Chunk) -> Stats {
    let text = chunk.text.as_str();
    let mut s = Stats {
        sources: 1,
        chunks: 1,
        bytes: text.len() as u64,
        source_names: vec![chunk.source.clone()],
        ..Stats::default()
    };
    let mut letters = [0u64; 26];
    let mut longest: Option<(usize, &str, u64)> = None; // (start, line, characters)

    let mut start = 0;
    while start < text.len() {
        let end = text[start..]
            .find('\n')
            .map_or(text.len(), |i| start + i + 1);
        let raw = &text[start..end];
        let line = raw.strip_suffix('\n').unwrap_or(raw);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let chars = line.chars().count() as u64;
        s.lines += 1;
        s.characters += raw.chars().count() as u64;
        s.line_characters += chars;
        if line.trim().is_empty() {
            s.blank_lines += 1;
        }
        if longest.is_none_or(|(_, _, n)| chars > n) {
            longest = Some((start, line, chars));
        }
        scan_line(line, &mut s, &mut letters);
        start = end;
    }

    s.letters = ('a'..='z').zip(letters).collect();
    s.longest_line = longest.map(|(at, line, characters)| Line {
        source: chunk.source.clone(),
        offset: chunk.offset + at as u64,
        characters,
        text: line.to_owned(),
    });
    s.averages = averages(&s);
    s
}

/// Counts the words, sentences and letters of one line.
fn scan_line(line: &str, s: &mut Stats, letters: &mut [u64; 26]) {
    let mut chars = line.char_indices().peekable();
    // Whether the text just before is a word, perhaps followed by closing
    // quotes or brackets: the place where a sentence can end.
    let mut after_word = false;
    while let Some((start, c)) = chars.next() {
        if c.is_alphanumeric() {
            count_letter(c, s, letters);
            let mut n = 1;
            let mut end = start + c.len_utf8();
            while let Some((at, c)) = chars.next_if(|&(_, c)| c.is_alphanumeric()) {
                count_letter(c, s, letters);
                n += 1;
                end = at + c.len_utf8();
            }
            s.words += 1;
            s.word_characters += n;
            // Lowercase only the words that may be the longest.
            if s.longest_word.as_ref().is_none_or(|(_, len)| n >= *len) {
                let word = line[start..end].to_lowercase();
                let longer = match &s.longest_word {
                    None => true,
                    Some((w, len)) => n > *len || word < *w,
                };
                if longer {
                    s.longest_word = Some((word, n));
                }
            }
            after_word = true;
        } else if matches!(c, '.' | '!' | '?') {
            while chars
                .next_if(|&(_, c)| matches!(c, '.' | '!' | '?'))
                .is_some()
            {}
            let ends = chars
                .peek()
                .is_none_or(|&(_, next)| next.is_whitespace() || is_closing(next));
            if after_word && ends {
                s.sentences += 1;
            }
            after_word = false;
        } else if is_closing(c) {
            // `"Go."` and `(he said.)` end sentences too; keep `after_word`.
        } else {
            after_word = false;
        }
    }
}

fn count_letter(c: char, s: &mut Stats, letters: &mut [u64; 26]) {
    if c.is_ascii_alphabetic() {
        letters[usize::from(c.to_ascii_lowercase() as u8 - b'a')] += 1;
    } else if c.is_alphabetic() {
        s.other_letters += 1;
    }
}

fn is_closing(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '}' | '’' | '”' | '»')
}

/// Adds profiles up.
pub fn merge(parts: Vec<Stats>) -> Stats {
    let mut total = Stats::default();
    for p in parts {
        total.chunks += p.chunks;
        total.bytes += p.bytes;
        total.characters += p.characters;
        total.lines += p.lines;
        total.blank_lines += p.blank_lines;
        total.words += p.words;
        total.sentences += p.sentences;
        total.line_characters += p.line_characters;
        total.word_characters += p.word_characters;
        total.other_letters += p.other_letters;
        for (letter, n) in p.letters {
            *total.letters.entry(letter).or_insert(0) += n;
        }
        total.longest_line = match (total.longest_line.take(), p.longest_line) {
            (Some(a), Some(b)) => Some(
                if (b.characters, &a.source, a.offset) > (a.characters, &b.source, b.offset) {
                    b
                } else {
                    a
                },
            ),
            (a, b) => a.or(b),
        };
        total.longest_word = match (total.longest_word.take(), p.longest_word) {
            (Some(a), Some(b)) => Some(if b.1 > a.1 || (b.1 == a.1 && b.0 < a.0) {
                b
            } else {
                a
            }),
            (a, b) => a.or(b),
        };
        total.source_names.extend(p.source_names);
    }
    total.source_names.sort_unstable();
    total.source_names.dedup();
    total.sources = total.source_names.len() as u64;
    total.averages = averages(&total);
    total
}

fn averages(s: &Stats) -> Averages {
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Averages {
        line_length: ratio(s.line_characters, s.lines),
        words_per_line: ratio(s.words, s.lines),
        words_per_text_line: ratio(s.words, s.lines - s.blank_lines),
        words_per_sentence: ratio(s.words, s.sentences),
        word_length: ratio(s.word_characters, s.words),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats_of(chunk: Chunk) -> Stats {
        profile(&chunk)
    }

    fn chunk(source: &str, offset: u64, text: &str) -> Chunk {
        Chunk {
            source: source.to_owned(),
            offset,
            text: text.to_owned(),
        }
    }

    #[test]
    fn counts_lines_words_and_sentences() {
        let s = stats_of(chunk(
            "a.txt",
            0,
            "To be, or not to be: that is the question.\n\nWhy? \"Go!\" he said.\n",
        ));
        assert_eq!((s.sources, s.chunks), (1, 1));
        assert_eq!(s.lines, 3);
        assert_eq!(s.blank_lines, 1);
        assert_eq!(s.words, 10 + 4);
        assert_eq!(s.sentences, 4);
        assert_eq!(s.bytes, 64);
        assert_eq!(s.characters, 64);
        assert_eq!(s.word_characters, 30 + 11);
    }

    #[test]
    fn sentence_ends_are_heuristic_but_consistent() {
        let n = |text: &str| stats_of(chunk("", 0, text)).sentences;
        assert_eq!(n("Wait... what?! No."), 3);
        assert_eq!(n("3.14 is not 2 sentences"), 0);
        assert_eq!(n("e.g. this"), 1);
        assert_eq!(n("(Aside.) Exit."), 2);
        assert_eq!(n("... ?"), 0);
        assert_eq!(n("Ham. My lord"), 1);
    }

    #[test]
    fn counts_letters_and_characters() {
        let s = stats_of(chunk("", 0, "Cæsar, AB ab\r\nÉté\n"));
        assert_eq!(s.letters[&'a'], 3);
        assert_eq!(s.letters[&'b'], 2);
        assert_eq!(s.letters[&'t'], 1);
        assert_eq!(s.letters[&'z'], 0);
        assert_eq!(s.letters.len(), 26);
        assert_eq!(s.other_letters, 3); // æ, É, é
        assert_eq!(s.characters, 18);
        assert_eq!(s.bytes, 21);
        assert_eq!(s.line_characters, 15);
        let line = s.longest_line.unwrap();
        assert_eq!(
            (line.characters, line.text.as_str(), line.offset),
            (12, "Cæsar, AB ab", 0)
        );
        assert_eq!(s.longest_word, Some(("cæsar".to_owned(), 5)));
    }

    #[test]
    fn empty_text_profiles_as_zero() {
        let s = stats_of(chunk("empty.txt", 0, ""));
        assert_eq!((s.lines, s.words, s.characters, s.sentences), (0, 0, 0, 0));
        assert_eq!(s.longest_line, None);
        assert_eq!(s.averages, Averages::default());
    }

    #[test]
    fn the_longest_line_knows_where_it_is() {
        let s = stats_of(chunk("b.txt", 1000, "short\na much longer line\nmid\n"));
        let line = s.longest_line.unwrap();
        assert_eq!(
            (line.source.as_str(), line.offset, line.characters),
            ("b.txt", 1006, 18)
        );
    }

    #[test]
    fn merging_chunks_equals_profiling_the_whole() {
        let text = concat!(
            "Enter Barnardo and Francisco two Centinels.\n\n  Barnardo. Who's there?\n",
            "Fran. Nay answer me: Stand & vnfold\nyour selfe\n\n   Bar. Long liue the King\n",
        );
        let whole = stats_of(chunk("hamlet.txt", 0, text));
        let mut parts = Vec::new();
        let mut offset = 0;
        for piece in text.split_inclusive('\n').collect::<Vec<_>>().chunks(3) {
            let piece = piece.concat();
            parts.push(stats_of(chunk("hamlet.txt", offset, &piece)));
            offset += piece.len() as u64;
        }
        assert!(parts.len() > 1);
        let mut merged = merge_stats(parts);
        assert_eq!(merged.chunks, 3);
        merged.chunks = 1;
        assert_eq!(merged, whole);
    }

    #[test]
    fn merging_counts_sources_and_computes_averages() {
        let a = stats_of(chunk("a.txt", 0, "One two. Three four.\n"));
        let b1 = stats_of(chunk("b.txt", 0, "Five six seven eight.\n"));
        let b2 = stats_of(chunk("b.txt", 22, "\n"));
        let m = merge_stats(vec![a, b1, b2]);
        assert_eq!(
            (m.sources, m.chunks, m.lines, m.words, m.sentences),
            (2, 3, 3, 8, 3)
        );
        assert_eq!(m.averages.words_per_line, 8.0 / 3.0);
        assert_eq!(m.averages.words_per_text_line, 4.0);
        assert_eq!(m.averages.words_per_sentence, 8.0 / 3.0);
        assert_eq!(m.averages.line_length, (20.0 + 21.0 + 0.0) / 3.0);
        assert_eq!(m.averages.word_length, 32.0 / 8.0);
        assert_eq!(merge_stats(vec![m.clone()]), m);
    }

    #[test]
    fn ties_are_broken_the_same_way_in_any_order() {
        let a = stats_of(chunk("a.txt", 0, "same\n"));
        let b = stats_of(chunk("b.txt", 0, "mesa\n"));
        let ab = merge_stats(vec![a.clone(), b.clone()]);
        let ba = merge_stats(vec![b, a]);
        assert_eq!(ab, ba);
        assert_eq!(ab.longest_line.unwrap().source, "a.txt");
        assert_eq!(ab.longest_word.unwrap().0, "mesa");
    }

    #[test]
    fn stats_round_trip_through_json() {
        let s = merge_stats(vec![stats_of(chunk("a.txt", 0, "Zebra æ.\n"))]);
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""z":1"#), "{json}");
        let back: Stats = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert_eq!(merge_stats(vec![back]), s);
    }
}
