//! YAML as Kubernetes reads it, and YAML that Kubernetes reads back unchanged.
//!
//! Kubernetes does not read YAML 1.2. `kubectl` and the API machinery go through
//! `sigs.k8s.io/yaml`, which parses with (a fork of) go-yaml v2 into `interface{}` and then
//! converts the result to JSON. go-yaml v2 resolves plain scalars with YAML 1.1-style rules:
//! `yes`, `on`, `y` and `off` are booleans, `0644` is the octal integer 420, `1_000` is 1000,
//! `09` is the float 9.0, `2024-01-01` stays a string, mapping keys such as `1` or `true`
//! become the JSON strings `"1"` and `"true"`, and so on. A generic YAML 1.2 library reads many of
//! these differently, and a backup tool that reads `mode: 0644` as 644, or writes the string
//! `"yes"` back as a bare `yes`, silently changes the data it was trusted to keep.
//!
//! This module therefore does two things, on top of the event API of `saphyr-parser`:
//!
//! * [`parse_documents`] reads a YAML stream (several documents, `---`, `...`, anchors, aliases
//!   and `<<` merge keys, tags, JSON) into one [`serde_json::Value`] per document, resolving every
//!   scalar exactly as go-yaml v2 + `sigs.k8s.io/yaml` do, and rejecting what they reject
//!   (duplicate keys, non-scalar keys, values JSON cannot hold).
//! * [`to_yaml`] writes a value as block-style YAML that go-yaml v2, `kubectl` and YAML 1.1
//!   loaders such as PyYAML all read back to exactly the same value: a string is written plain
//!   only when it is obviously a string under every one of those rule sets, otherwise as a
//!   literal block (`|`) or a double-quoted scalar; floats always look like floats.
//!
//! Hostile input is bounded: nesting deeper than [`MAX_DEPTH`] and alias expansion beyond
//! [`MAX_ALIAS_NODES`] nodes or [`MAX_ALIAS_BYTES`] bytes ("billion laughs") are errors, never a
//! stack overflow or an exhausted memory.
//!
//! Mapping keys follow `sigs.k8s.io/yaml` exactly: an integer key becomes its decimal text, a
//! boolean `"true"`/`"false"`, a float `strconv.FormatFloat(f, 'g', -1, 32)` (so `1.5` gives
//! `"1.5"` and `1e6` gives `"1e+06"`), while null keys, unsigned keys beyond `i64` and complex
//! keys are errors, as they are for Kubernetes.
//!
//! # Known differences from Kubernetes
//!
//! - `!!binary` scalars keep their base64 text (go-yaml v2 decodes it); `!!timestamp` scalars
//!   are always strings (go-yaml rejects one that is not a timestamp); the YAML 1.1 line breaks
//!   NEL, LS and PS are ordinary characters when reading (the writer always escapes them).
//! - saphyr-parser follows the YAML spec where libyaml is lenient. Indentation inside flow
//!   collections and multi-line quoted scalars, which libyaml ignores and real manifests rely
//!   on (a closing `]` at its key's column, description lines at the key's column), is repaired
//!   and the text parsed again (see `repair_indentation`). A tab right after `key:` before a
//!   letter, digit or `-` (`key:<TAB>value`) remains a syntax error here.
//! - Flow collections nest at most 255 levels (saphyr-parser's own bound), block ones
//!   [`MAX_DEPTH`].
//! - Duplicate keys are an error, as in `sigs.k8s.io/yaml`'s strict mode (what kubectl
//!   reports); its non-strict mode keeps the last value.
//! - JSON that is not YAML (escaped UTF-16 surrogate pairs such as `"\ud83d\ude00"`) is read
//!   with serde_json, as Kubernetes reads JSON with a JSON decoder. JSON read as YAML follows
//!   go-yaml: `-0` is the integer 0, and long numbers are rounded correctly (serde_json without
//!   its `float_roundtrip` feature can be one unit in the last place off).
//! - A block scalar that ends the file, followed by a last line of more blanks than its
//!   indentation and no final line break, loses those blanks.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};
use serde_json::{Map, Number, Value};

/// Deepest nesting of mappings and sequences accepted by [`parse_documents`].
pub const MAX_DEPTH: usize = 1000;
/// Most nodes that aliases may copy into one document.
pub const MAX_ALIAS_NODES: u64 = 1_000_000;
/// Most bytes of text (keys and scalars) that aliases may copy into one document.
pub const MAX_ALIAS_BYTES: u64 = 64 << 20;

/// One YAML document's value as Kubernetes would read it, and where the document started.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The document's content; `Value::Null` for an empty document.
    pub value: Value,
    /// 1-based line of the document start (its `---`, or its first token).
    pub line: usize,
    /// 0-based index of the document in the stream.
    pub index: usize,
}

/// Why a YAML stream could not be read. Every message is one line and names the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlError {
    /// The text is not well-formed YAML.
    #[error("YAML syntax error at line {line}, column {col}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        col: usize,
        /// What the parser expected or found.
        message: String,
    },
    /// A mapping defines the same key twice (go-yaml's "key already set in map").
    #[error("line {line}: mapping key {key:?} is defined more than once")]
    DuplicateKey {
        /// 1-based line of the second definition.
        line: usize,
        /// The key, as a JSON object key.
        key: String,
    },
    /// A scalar carries an explicit tag (`!!int`, `!!bool`, ...) that its text does not satisfy.
    #[error("line {line}: cannot read {value:?} as {tag}")]
    UnsupportedTag {
        /// 1-based line.
        line: usize,
        /// The tag, shortened to `!!name` for the YAML core tags.
        tag: String,
        /// The scalar's text (shortened when long).
        value: String,
    },
    /// A mapping key is a mapping or a sequence, which JSON cannot hold.
    #[error("line {line}: a {kind} cannot be a mapping key")]
    ComplexKey {
        /// 1-based line.
        line: usize,
        /// `mapping` or `sequence`.
        kind: &'static str,
    },
    /// A value that Kubernetes rejects too: infinity, NaN, an integer beyond 64 bits, or a null
    /// or unsigned 64-bit mapping key.
    #[error("line {line}: {what}")]
    Unsupported {
        /// 1-based line.
        line: usize,
        /// What is unsupported.
        what: String,
    },
    /// A `<<` merge key whose value is not a mapping or a sequence of mappings.
    #[error("line {line}: the merge key `<<` needs a mapping or a sequence of mappings")]
    InvalidMerge {
        /// 1-based line of the `<<` key.
        line: usize,
    },
    /// An alias inside the very node its anchor names.
    #[error("line {line}: alias refers to a node that contains the alias itself")]
    AliasLoop {
        /// 1-based line of the alias.
        line: usize,
    },
    /// An alias whose anchor is not defined earlier in the same document.
    #[error("line {line}: alias refers to an unknown anchor")]
    UnknownAnchor {
        /// 1-based line of the alias.
        line: usize,
    },
    /// Aliases expand the document beyond the limits ("billion laughs").
    #[error("line {line}: aliases expand the document beyond {MAX_ALIAS_NODES} nodes or {MAX_ALIAS_BYTES} bytes")]
    AliasExpansion {
        /// 1-based line of the alias (or anchor) that crossed the limit.
        line: usize,
    },
    /// Mappings and sequences nested deeper than [`MAX_DEPTH`].
    #[error("line {line}: mappings and sequences are nested deeper than {MAX_DEPTH} levels")]
    TooDeep {
        /// 1-based line of the collection that crossed the limit.
        line: usize,
    },
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// Parse every document of a stream (multi-document files, `---` separators). Empty documents
/// (only comments / nothing / explicit null) are returned as `Value::Null` so callers can skip
/// them; a stream without any document (empty text, only comments) gives one such document.
///
/// # Errors
/// A [`YamlError`] naming the line of the first problem; no partial result is returned.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, YamlError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let text = trim_blank_last_line(text);
    let result = match parse_yaml(text, false) {
        Ok((docs, _)) => Ok(docs),
        Err(Failure::Scan(e)) => {
            // Many under-indented quoted scalars (as in some generated CRDs): indent them all at
            // once, and keep the result only if every changed line turns out to be inside a
            // quoted scalar. Otherwise repair one parser error at a time.
            let fast = if e.info() == QUOTED_INDENTATION {
                indent_all_quoted(text).and_then(|(fixed, lines)| parse_repairing(&fixed, &lines).ok())
            } else {
                None
            };
            match fast {
                Some(docs) => Ok(docs),
                None => parse_repairing(text, &[]),
            }
        }
        Err(failure) => Err(failure),
    };
    match result {
        Ok(docs) => Ok(docs),
        Err(Failure::Yaml(e)) => Err(e),
        // Only the guessed repairs are verified, and their failure falls back to the others.
        Err(Failure::Unverified) => {
            Err(YamlError::Syntax { line: 1, col: 1, message: "indentation repair could not be verified".to_owned() })
        }
        Err(Failure::Scan(e)) => {
            let error = syntax_error(&e);
            match parse_json(text) {
                Some(docs) if matches!(error, YamlError::Syntax { .. }) => Ok(docs),
                _ => Err(error),
            }
        }
    }
}

const QUOTED_INDENTATION: &str = "invalid indentation in quoted scalar";

/// Why one parse attempt failed: saphyr-parser's syntax error (which may be repairable), or
/// a final error.
enum Failure {
    Scan(ScanError),
    Yaml(YamlError),
    /// Lines changed by [`indent_all_quoted`] were not all inside quoted scalars.
    Unverified,
}

/// Parses, repairing indentation that only libyaml accepts (see [`repair_indentation`]) as
/// long as the re-parsing stays within a budget. `changed` lists lines that were changed
/// beforehand and must turn out to be continuation lines of quoted scalars.
fn parse_repairing(text: &str, changed: &[usize]) -> Result<Vec<Document>, Failure> {
    let mut repaired: Option<String> = None;
    let mut repairs = Repairs::default();
    let budget = text.len().saturating_mul(8).max(64 << 20);
    let mut spent = 0usize;
    loop {
        let current = repaired.as_deref().unwrap_or(text);
        spent = spent.saturating_add(current.len());
        let error = match parse_yaml(current, !changed.is_empty()) {
            Ok((docs, covered)) => {
                return if changed.iter().all(|line| is_covered(&covered, *line)) {
                    Ok(docs)
                } else {
                    Err(Failure::Unverified)
                };
            }
            Err(Failure::Scan(e)) => e,
            Err(failure) => return Err(failure),
        };
        if spent >= budget {
            return Err(Failure::Scan(error));
        }
        match repair_indentation(current, &error, &mut repairs) {
            Some(fixed) => repaired = Some(fixed),
            None => return Err(Failure::Scan(error)),
        }
    }
}

/// Whether `line` is inside one of the sorted, disjoint line ranges.
fn is_covered(ranges: &[(usize, usize)], line: usize) -> bool {
    let i = ranges.partition_point(|&(start, _)| start <= line);
    i > 0 && ranges[i - 1].1 >= line
}

/// Line ranges (first, last; 1-based, inclusive).
type LineRanges = Vec<(usize, usize)>;

/// Parses `text`; with `track_quoted`, also returns the line ranges of the continuation lines
/// of multi-line quoted scalars.
fn parse_yaml(text: &str, track_quoted: bool) -> Result<(Vec<Document>, LineRanges), Failure> {
    let mut loader = Loader::new(text);
    let mut covered = Vec::new();
    let mut parser = Parser::new_from_str(text);
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(Failure::Scan)?;
        if track_quoted {
            if let Event::Scalar(_, ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted, ..) = event {
                if span.end.line() > span.start.line() {
                    covered.push((span.start.line() + 1, span.end.line()));
                }
            }
        }
        if loader.on_event(event, span).map_err(Failure::Yaml)? {
            break;
        }
    }
    Ok((loader.finish(), covered))
}

/// The closing quote of the quoted scalar whose opening quote is at byte `at`.
fn closing_quote(b: &[u8], at: usize) -> Option<usize> {
    let quote = *b.get(at)?;
    let mut i = at + 1;
    loop {
        match (quote, *b.get(i)?) {
            (b'"', b'\\') => i += 2,
            (b'\'', b'\'') if b.get(i + 1) == Some(&b'\'') => i += 2,
            (b'"', b'"') | (b'\'', b'\'') => return Some(i),
            _ => i += 1,
        }
    }
}

/// A guess, from the text alone, at every multi-line quoted scalar that starts a value
/// (`key: 'text` or `- "text`): their continuation lines get at least the quote's
/// indentation. Returns the new text and the changed lines (1-based, ascending), or `None`
/// when nothing changed.
fn indent_all_quoted(text: &str) -> Option<(String, Vec<usize>)> {
    let b = text.as_bytes();
    let mut fixed = String::with_capacity(text.len() + text.len() / 16);
    let mut changed = Vec::new();
    let mut done = 0;
    let mut line_no = 1;
    let mut pos = 0;
    while pos < b.len() {
        let line_end = text[pos..].find('\n').map_or(b.len(), |i| pos + i);
        let Some(quote) = value_quote(&text[pos..line_end]).map(|q| pos + q) else {
            pos = line_end + 1;
            line_no += 1;
            continue;
        };
        let Some(close) = closing_quote(b, quote) else {
            break;
        };
        let col = text[pos..quote].chars().count();
        // Continuation lines up to the closing quote.
        let mut p = quote;
        while let Some(nl) = text[p..close].find('\n') {
            let start = p + nl + 1;
            line_no += 1;
            let rest = &text[start..];
            let lead = rest.len() - rest.trim_start_matches(' ').len();
            let blank = rest[lead..].starts_with(['\n', '\r']);
            if lead < col && !blank {
                fixed.push_str(&text[done..start]);
                fixed.extend(std::iter::repeat_n(' ', col - lead));
                done = start;
                changed.push(line_no);
            }
            p = start;
        }
        pos = text[close..].find('\n').map_or(b.len(), |i| close + i) + 1;
        line_no += 1;
    }
    if changed.is_empty() {
        return None;
    }
    fixed.push_str(&text[done..]);
    Some((fixed, changed))
}

/// The byte offset of a quote that opens a value in this line, if any: the line is
/// `[- ]...[key: ]'...` with a plain key.
fn value_quote(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    let mut i = 0;
    loop {
        while b.get(i) == Some(&b' ') {
            i += 1;
        }
        if b.get(i) == Some(&b'-') && b.get(i + 1) == Some(&b' ') {
            i += 2;
        } else {
            break;
        }
    }
    if !matches!(b.get(i), Some(b'\'' | b'"')) {
        let key_end = line[i..].find(": ").map(|k| i + k)?;
        if line[i..key_end].contains(['#', '\'', '"', '[', '{', '&', '*', '!', '|', '>']) {
            return None;
        }
        i = key_end + 2;
        while b.get(i) == Some(&b' ') {
            i += 1;
        }
    }
    matches!(b.get(i), Some(b'\'' | b'"')).then_some(i)
}

/// Drops a last line of only blanks that no line break ends: it carries no content for
/// libyaml, but saphyr-parser reads it as one more line break of a block scalar that it ends.
fn trim_blank_last_line(text: &str) -> &str {
    let start = text.rfind(['\n', '\r']).map_or(0, |i| i + 1);
    let last = &text[start..];
    if !last.is_empty() && last.bytes().all(|b| b == b' ' || b == b'\t') {
        &text[..start]
    } else {
        text
    }
}

/// Columns added so far, per line, by [`repair_indentation`].
#[derive(Default)]
struct Repairs {
    shifted: HashMap<usize, usize>,
}

/// saphyr-parser follows the YAML spec on indentation inside flow constructs; libyaml, and so
/// go-yaml and Kubernetes, ignore it. Real manifests rely on that, e.g. a flow sequence whose
/// closing `]` sits at its key's column, or a quoted scalar whose continuation lines do:
///
/// ```yaml
/// args: [
///   "a",
/// ]
/// message: 'first line
/// second line'
/// ```
///
/// Inside flow constructs (and quoted scalars) the indentation of a line never changes a value,
/// so when saphyr-parser rejects one, the offending lines get more indentation and the text is
/// parsed again. Returns the repaired text, or `None` for any other error.
fn repair_indentation(text: &str, error: &ScanError, repairs: &mut Repairs) -> Option<String> {
    let at = byte_offset(text, error.marker().index())?;
    let col = error.marker().col();
    match error.info() {
        QUOTED_INDENTATION => indent_quoted_continuation(text, at, col),
        "invalid indentation" | "invalid indentation in flow construct" => {
            let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let prev_lead = text[..line_start.saturating_sub(1)]
                .rsplit('\n')
                .find(|l| !l.trim().is_empty())
                .map_or(0, |l| l.len() - l.trim_start_matches(' ').len());
            let line = error.marker().line();
            let delta = match repairs.shifted.get(&line) {
                Some(&previous) => previous.checked_mul(2)?,
                None => (prev_lead + 2).saturating_sub(col).max(1),
            };
            if delta > 4096 {
                return None;
            }
            repairs.shifted.insert(line, delta);
            let mut fixed = String::with_capacity(text.len() + delta);
            fixed.push_str(&text[..line_start]);
            fixed.extend(std::iter::repeat_n(' ', delta));
            fixed.push_str(&text[line_start..]);
            Some(fixed)
        }
        _ => None,
    }
}

/// Indents every continuation line of the quoted scalar opening at byte `at` (column `col`)
/// to at least that column.
fn indent_quoted_continuation(text: &str, at: usize, col: usize) -> Option<String> {
    let close = closing_quote(text.as_bytes(), at)?;
    let mut fixed = String::with_capacity(text.len() + 64);
    let mut done = 0;
    let mut changed = false;
    let mut pos = at;
    while let Some(nl) = text[pos..close].find('\n') {
        let line_start = pos + nl + 1;
        let rest = &text[line_start..];
        let lead = rest.len() - rest.trim_start_matches(' ').len();
        let blank = rest[lead..].starts_with(['\n', '\r']);
        if lead < col && !blank {
            fixed.push_str(&text[done..line_start]);
            fixed.extend(std::iter::repeat_n(' ', col - lead));
            done = line_start;
            changed = true;
        }
        pos = line_start;
    }
    if !changed {
        return None;
    }
    fixed.push_str(&text[done..]);
    Some(fixed)
}

/// The byte offset of the character at index `chars`.
fn byte_offset(text: &str, chars: usize) -> Option<usize> {
    if text.is_ascii() {
        return (chars <= text.len()).then_some(chars);
    }
    text.char_indices().map(|(i, _)| i).chain(std::iter::once(text.len())).nth(chars)
}

/// JSON that YAML rejects: escaped UTF-16 surrogate pairs (`"\ud83d\ude00"`) are JSON but not
/// YAML. Kubernetes reads JSON input with a JSON decoder, and so does this fallback.
fn parse_json(text: &str) -> Option<Vec<Document>> {
    let content = text.trim_start_matches([' ', '\t', '\r', '\n']);
    if !content.starts_with(['{', '[']) {
        return None;
    }
    let value: Value = serde_json::from_str(content).ok()?;
    let skipped = &text[..text.len() - content.len()];
    let line = 1 + skipped.bytes().filter(|&b| b == b'\n').count();
    Some(vec![Document { value, line, index: 0 }])
}

fn syntax_error(e: &ScanError) -> YamlError {
    let line = e.marker().line();
    // saphyr-parser's own bound on flow nesting (255 levels).
    if e.info() == "recursion limit exceeded" {
        return YamlError::TooDeep { line };
    }
    YamlError::Syntax { line, col: e.marker().col() + 1, message: e.info().to_owned() }
}

/// Size of a (sub)tree: its nodes, and the bytes of its keys and scalars.
#[derive(Clone, Copy, Default)]
struct Stats {
    nodes: u64,
    bytes: u64,
}

impl Stats {
    fn add(&mut self, other: Stats) {
        self.nodes = self.nodes.saturating_add(other.nodes);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

enum PendingKey {
    Key(String, usize),
    Merge(usize),
}

enum Frame {
    Seq {
        items: Vec<Value>,
        anchor: usize,
        line: usize,
        stats: Stats,
    },
    Map {
        map: Map<String, Value>,
        /// Keys that came from `<<` merges (explicit keys may replace them).
        merged: HashSet<String>,
        key: Option<PendingKey>,
        anchor: usize,
        line: usize,
        stats: Stats,
    },
}

impl Frame {
    fn anchor(&self) -> usize {
        match self {
            Frame::Seq { anchor, .. } | Frame::Map { anchor, .. } => *anchor,
        }
    }
}

enum AnchoredValue {
    Value(Value),
    /// An anchored mapping key `.inf` / `.nan`: usable as a key, not as a value.
    NonFinite(f64),
}

struct Anchored {
    value: AnchoredValue,
    stats: Stats,
}

/// Turns parser events into documents.
struct Loader {
    docs: Vec<Document>,
    doc_line: usize,
    root: Option<Value>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Anchored>,
    /// Whether anchored values must be kept: only when the text can contain an alias at all.
    keep_anchors: bool,
    alias_nodes: u64,
    alias_bytes: u64,
    /// Work spent copying anchored values, bounded so nested anchors cannot go quadratic.
    anchor_cost: u64,
    anchor_budget: u64,
    /// The character index of the end of the input, when no line break ends it.
    eof_index: Option<usize>,
}

impl Loader {
    fn new(text: &str) -> Self {
        let len = u64::try_from(text.len()).unwrap_or(u64::MAX);
        Loader {
            docs: Vec::new(),
            doc_line: 1,
            root: None,
            stack: Vec::new(),
            anchors: HashMap::new(),
            keep_anchors: text.contains('*'),
            alias_nodes: 0,
            alias_bytes: 0,
            anchor_cost: 0,
            anchor_budget: (MAX_ALIAS_BYTES * 2).saturating_add(len.saturating_mul(4)),
            eof_index: (!text.is_empty() && !text.ends_with(['\n', '\r'])).then(|| text.chars().count()),
        }
    }

    fn finish(mut self) -> Vec<Document> {
        if self.docs.is_empty() {
            self.docs.push(Document { value: Value::Null, line: 1, index: 0 });
        }
        self.docs
    }

    /// Handles one event; true at the end of the stream.
    fn on_event(&mut self, event: Event<'_>, span: Span) -> Result<bool, YamlError> {
        let line = span.start.line();
        match event {
            Event::StreamEnd => return Ok(true),
            Event::StreamStart | Event::Nothing => {}
            Event::DocumentStart(_) => {
                self.doc_line = line;
                self.root = None;
                self.stack.clear();
                self.anchors.clear();
                self.alias_nodes = 0;
                self.alias_bytes = 0;
            }
            Event::DocumentEnd => {
                let index = self.docs.len();
                self.docs.push(Document { value: self.root.take().unwrap_or(Value::Null), line: self.doc_line, index });
            }
            Event::Scalar(text, style, anchor, tag) => {
                let mut text: &str = &text;
                // saphyr-parser ends a block scalar that reaches the end of the input with a line
                // break the input does not have; libyaml does not.
                if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded)
                    && Some(span.end.index()) == self.eof_index
                {
                    text = text.strip_suffix('\n').unwrap_or(text);
                }
                self.on_scalar(text, style, anchor, tag.as_deref(), line)?;
            }
            Event::Alias(id) => self.on_alias(id, line)?,
            Event::SequenceStart(anchor, _) => {
                self.check_collection_start("sequence", line)?;
                self.stack.push(Frame::Seq { items: Vec::new(), anchor, line, stats: Stats::default() });
            }
            Event::MappingStart(anchor, _) => {
                self.check_collection_start("mapping", line)?;
                self.stack.push(Frame::Map {
                    map: Map::new(),
                    merged: HashSet::new(),
                    key: None,
                    anchor,
                    line,
                    stats: Stats::default(),
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    return Err(YamlError::Syntax {
                        line,
                        col: span.start.col() + 1,
                        message: "unbalanced end of collection".to_owned(),
                    });
                };
                let (value, mut stats, anchor, start_line) = match frame {
                    Frame::Seq { items, anchor, line, stats } => (Value::Array(items), stats, anchor, line),
                    Frame::Map { map, anchor, line, stats, .. } => (Value::Object(map), stats, anchor, line),
                };
                stats.nodes = stats.nodes.saturating_add(1);
                self.complete(value, stats, anchor, false, start_line)?;
            }
        }
        Ok(false)
    }

    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }

    fn check_collection_start(&self, kind: &'static str, line: usize) -> Result<(), YamlError> {
        if self.expecting_key() {
            return Err(YamlError::ComplexKey { line, kind });
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(YamlError::TooDeep { line });
        }
        Ok(())
    }

    fn on_scalar(
        &mut self,
        text: &str,
        style: ScalarStyle,
        anchor: usize,
        tag: Option<&Tag>,
        line: usize,
    ) -> Result<(), YamlError> {
        let tag = tag.map(full_tag);
        let stats = Stats { nodes: 1, bytes: u64::try_from(text.len()).unwrap_or(u64::MAX) };
        if self.expecting_key() {
            let is_merge = text == "<<"
                && match tag.as_deref() {
                    None => style == ScalarStyle::Plain,
                    Some(t) => t == "tag:yaml.org,2002:merge",
                };
            let (key, anchored) = if is_merge {
                (PendingKey::Merge(line), AnchoredValue::Value(Value::String("<<".into())))
            } else {
                let resolved = resolve_scalar(text, style, tag.as_deref(), line)?;
                let key = key_from_resolved(&resolved, text, line)?;
                let anchored = match resolved {
                    Resolved::Float(f) if !f.is_finite() => AnchoredValue::NonFinite(f),
                    other => AnchoredValue::Value(value_from_resolved(other, text, line)?),
                };
                (PendingKey::Key(key, line), anchored)
            };
            if anchor != 0 {
                self.store_anchor(anchor, anchored, stats, line)?;
            }
            if let Some(Frame::Map { key: slot, .. }) = self.stack.last_mut() {
                *slot = Some(key);
            }
            return Ok(());
        }
        let resolved = resolve_scalar(text, style, tag.as_deref(), line)?;
        let value = value_from_resolved(resolved, text, line)?;
        self.complete(value, stats, anchor, false, line)
    }

    fn on_alias(&mut self, id: usize, line: usize) -> Result<(), YamlError> {
        let Some(anchored) = self.anchors.get(&id) else {
            if self.stack.iter().any(|f| f.anchor() == id) {
                return Err(YamlError::AliasLoop { line });
            }
            return Err(YamlError::UnknownAnchor { line });
        };
        if self.expecting_key() {
            let key = match &anchored.value {
                AnchoredValue::NonFinite(f) => go_format_key_float(*f),
                AnchoredValue::Value(v) => key_from_value(v, line)?,
            };
            if let Some(Frame::Map { key: slot, .. }) = self.stack.last_mut() {
                *slot = Some(PendingKey::Key(key, line));
            }
            return Ok(());
        }
        let stats = anchored.stats;
        let value = match &anchored.value {
            AnchoredValue::Value(v) => {
                self.alias_nodes = self.alias_nodes.saturating_add(stats.nodes);
                self.alias_bytes = self.alias_bytes.saturating_add(stats.bytes);
                if self.alias_nodes > MAX_ALIAS_NODES || self.alias_bytes > MAX_ALIAS_BYTES {
                    return Err(YamlError::AliasExpansion { line });
                }
                v.clone()
            }
            AnchoredValue::NonFinite(f) => return Err(non_finite(*f, line)),
        };
        self.deliver(value, stats, true, line)
    }

    fn store_anchor(
        &mut self,
        anchor: usize,
        value: AnchoredValue,
        stats: Stats,
        line: usize,
    ) -> Result<(), YamlError> {
        if !self.keep_anchors {
            return Ok(());
        }
        self.anchor_cost = self.anchor_cost.saturating_add(stats.bytes).saturating_add(stats.nodes.saturating_mul(16));
        if self.anchor_cost > self.anchor_budget {
            return Err(YamlError::AliasExpansion { line });
        }
        self.anchors.insert(anchor, Anchored { value, stats });
        Ok(())
    }

    /// A node is complete: remember it under its anchor, then hand it to its parent.
    fn complete(
        &mut self,
        value: Value,
        stats: Stats,
        anchor: usize,
        from_alias: bool,
        line: usize,
    ) -> Result<(), YamlError> {
        if anchor != 0 && self.keep_anchors {
            self.store_anchor(anchor, AnchoredValue::Value(value.clone()), stats, line)?;
        }
        self.deliver(value, stats, from_alias, line)
    }

    fn deliver(&mut self, value: Value, stats: Stats, from_alias: bool, line: usize) -> Result<(), YamlError> {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, stats: s, .. }) => {
                s.add(stats);
                items.push(value);
            }
            Some(Frame::Map { map, merged, key, stats: s, .. }) => {
                s.add(stats);
                match key.take() {
                    // Collections in key position are rejected when they start, and scalar and
                    // alias keys are handled before delivery.
                    None => return Err(YamlError::ComplexKey { line, kind: "node" }),
                    Some(PendingKey::Key(k, key_line)) => {
                        s.bytes = s.bytes.saturating_add(u64::try_from(k.len()).unwrap_or(u64::MAX));
                        if let Some(slot) = map.get_mut(&k) {
                            if merged.remove(&k) {
                                *slot = value;
                            } else {
                                return Err(YamlError::DuplicateKey { line: key_line, key: shorten(&k) });
                            }
                        } else {
                            map.insert(k, value);
                        }
                    }
                    Some(PendingKey::Merge(merge_line)) => {
                        merge_into(map, merged, value, from_alias, merge_line)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Applies a `<<` merge: keys already present (explicit, or from an earlier merge) win.
fn merge_into(
    map: &mut Map<String, Value>,
    merged: &mut HashSet<String>,
    value: Value,
    from_alias: bool,
    line: usize,
) -> Result<(), YamlError> {
    match value {
        Value::Object(source) => merge_map(map, merged, source),
        // go-yaml accepts a sequence of mappings only when written in place, not via an alias.
        Value::Array(items) if !from_alias => {
            if !items.iter().all(Value::is_object) {
                return Err(YamlError::InvalidMerge { line });
            }
            for item in items {
                if let Value::Object(source) = item {
                    merge_map(map, merged, source);
                }
            }
        }
        _ => return Err(YamlError::InvalidMerge { line }),
    }
    Ok(())
}

fn merge_map(map: &mut Map<String, Value>, merged: &mut HashSet<String>, source: Map<String, Value>) {
    for (k, v) in source {
        if !map.contains_key(&k) {
            merged.insert(k.clone());
            map.insert(k, v);
        }
    }
}

const CORE_TAG: &str = "tag:yaml.org,2002:";

fn full_tag(tag: &Tag) -> String {
    if tag.handle == "!" {
        format!("!{}", tag.suffix)
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    }
}

fn short_tag(tag: &str) -> String {
    match tag.strip_prefix(CORE_TAG) {
        Some(rest) => format!("!!{rest}"),
        None => tag.to_owned(),
    }
}

/// A scalar after go-yaml v2's resolution. `Str` means the scalar's own text.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Resolved {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    /// An integer beyond 64 bits (go-yaml gives a `big.Int`).
    BigInt,
    Str,
}

fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&str>, line: usize) -> Result<Resolved, YamlError> {
    let Some(tag) = tag else {
        return Ok(if style == ScalarStyle::Plain { resolve_plain(text) } else { Resolved::Str });
    };
    let Some(core) = tag.strip_prefix(CORE_TAG) else {
        // go-yaml v2 does not resolve scalars with other tags (`!foo`, `!`): their text stays.
        return Ok(Resolved::Str);
    };
    let resolved = resolve_plain(text);
    let ok = match core {
        "int" => matches!(resolved, Resolved::Int(_) | Resolved::Uint(_) | Resolved::BigInt),
        "float" => match resolved {
            Resolved::Float(_) => true,
            #[allow(clippy::cast_precision_loss)]
            Resolved::Int(i) => return Ok(Resolved::Float(i as f64)),
            _ => false,
        },
        "bool" => matches!(resolved, Resolved::Bool(_)),
        "null" => resolved == Resolved::Null,
        // !!str, !!binary (kept as its base64 text), !!timestamp, !!map, !!seq, others.
        _ => return Ok(Resolved::Str),
    };
    if ok {
        Ok(resolved)
    } else {
        Err(YamlError::UnsupportedTag { line, tag: short_tag(tag), value: shorten(text) })
    }
}

fn non_finite(f: f64, line: usize) -> YamlError {
    let what = if f.is_nan() {
        "NaN"
    } else if f > 0.0 {
        "+infinity"
    } else {
        "-infinity"
    };
    YamlError::Unsupported { line, what: format!("the float {what} cannot be represented in JSON") }
}

fn value_from_resolved(resolved: Resolved, text: &str, line: usize) -> Result<Value, YamlError> {
    Ok(match resolved {
        Resolved::Null => Value::Null,
        Resolved::Bool(b) => Value::Bool(b),
        Resolved::Int(i) => Value::Number(i.into()),
        Resolved::Uint(u) => Value::Number(u.into()),
        Resolved::Float(f) => match Number::from_f64(f) {
            Some(n) => Value::Number(n),
            None => return Err(non_finite(f, line)),
        },
        Resolved::BigInt => {
            return Err(YamlError::Unsupported {
                line,
                what: format!("the integer {} does not fit in 64 bits", shorten(text)),
            })
        }
        Resolved::Str => Value::String(text.to_owned()),
    })
}

/// The JSON object key for a resolved scalar key, as `sigs.k8s.io/yaml` converts it.
fn key_from_resolved(resolved: &Resolved, text: &str, line: usize) -> Result<String, YamlError> {
    match *resolved {
        Resolved::Str => Ok(text.to_owned()),
        Resolved::Int(i) => Ok(i.to_string()),
        Resolved::Bool(b) => Ok(b.to_string()),
        Resolved::Float(f) => Ok(go_format_key_float(f)),
        Resolved::Null => {
            Err(YamlError::Unsupported { line, what: "a null mapping key cannot become a JSON object key".to_owned() })
        }
        Resolved::Uint(_) | Resolved::BigInt => Err(YamlError::Unsupported {
            line,
            what: format!("the integer mapping key {} is beyond the signed 64-bit range", shorten(text)),
        }),
    }
}

/// The JSON object key for an aliased node used as a key.
fn key_from_value(value: &Value, line: usize) -> Result<String, YamlError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => key_from_resolved(&Resolved::Null, "", line),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i.to_string())
            } else if n.is_u64() {
                key_from_resolved(&Resolved::Uint(0), &n.to_string(), line)
            } else {
                Ok(go_format_key_float(n.as_f64().unwrap_or(f64::NAN)))
            }
        }
        Value::Array(_) => Err(YamlError::ComplexKey { line, kind: "sequence" }),
        Value::Object(_) => Err(YamlError::ComplexKey { line, kind: "mapping" }),
    }
}

/// `strconv.FormatFloat(f, 'g', -1, 32)` with `.inf`/`-.inf`/`.nan` for the non-finite values:
/// what `sigs.k8s.io/yaml` makes of a float mapping key.
fn go_format_key_float(f: f64) -> String {
    #[allow(clippy::cast_possible_truncation)]
    let x = f as f32;
    if x.is_nan() {
        return ".nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { ".inf" } else { "-.inf" }.to_owned();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // Shortest digits that round-trip as f32, in the form "d.ddde[-]x".
    let e = format!("{x:e}");
    let (neg, e) = match e.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, e.as_str()),
    };
    let (mantissa, exp) = e.split_once('e').unwrap_or((e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let nd = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let digit =
        |i: i32| -> char { usize::try_from(i).ok().and_then(|i| digits.get(i)).map_or('0', |d| char::from(*d)) };
    if !(-4..6).contains(&exp) {
        // %e: d[.ddd]e±dd
        out.push(digit(0));
        if nd > 1 {
            out.push('.');
            for i in 1..nd {
                out.push(digit(i));
            }
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let abs = exp.unsigned_abs();
        if abs < 10 {
            out.push('0');
        }
        out.push_str(&abs.to_string());
    } else {
        // %f with just enough fraction digits.
        let dp = exp + 1;
        if dp > 0 {
            for i in 0..dp {
                out.push(digit(i));
            }
        } else {
            out.push('0');
        }
        let frac = (nd - dp).max(0);
        if frac > 0 {
            out.push('.');
            for i in 0..frac {
                out.push(digit(dp + i));
            }
        }
    }
    out
}

/// Resolves a plain (unquoted, untagged) scalar as go-yaml v2's `resolve` does.
fn resolve_plain(s: &str) -> Resolved {
    let Some(&first) = s.as_bytes().first() else {
        return Resolved::Null;
    };
    match first {
        b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~' => {
            lookup_word(s).unwrap_or(Resolved::Str)
        }
        b'.' => lookup_word(s).or_else(|| parse_dot_float(s).map(Resolved::Float)).unwrap_or(Resolved::Str),
        b'+' | b'-' | b'0'..=b'9' => lookup_word(s).unwrap_or_else(|| resolve_number(s)),
        _ => Resolved::Str,
    }
}

/// go-yaml v2's table of special words.
fn lookup_word(s: &str) -> Option<Resolved> {
    Some(match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Resolved::Bool(true),
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Resolved::Bool(false),
        "~" | "null" | "Null" | "NULL" => Resolved::Null,
        ".nan" | ".NaN" | ".NAN" => Resolved::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Resolved::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Resolved::Float(f64::NEG_INFINITY),
        _ => return None,
    })
}

/// A plain scalar starting with a sign or a digit. (Timestamps need no case of their own: they
/// stay strings, and nothing that looks like one parses as a number.)
fn resolve_number(s: &str) -> Resolved {
    let owned;
    let plain = if s.contains('_') {
        owned = s.replace('_', "");
        owned.as_str()
    } else {
        s
    };
    if let Ok(i) = go_parse_int(plain, 0) {
        return Resolved::Int(i);
    }
    let uint_err = match go_parse_uint(plain, 0) {
        Ok(u) => return Resolved::Uint(u),
        Err(e) => e,
    };
    if matches_yaml_float(plain.as_bytes()) {
        if let Ok(f) = plain.parse::<f64>() {
            if f.is_finite() {
                return Resolved::Float(f);
            }
        }
    }
    // go-yaml's fallbacks for binary literals (which also take a sign after the prefix).
    if let Some(rest) = plain.strip_prefix("0b") {
        if let Ok(i) = go_parse_int(rest, 2) {
            return Resolved::Int(i);
        }
        if let Ok(u) = go_parse_uint(rest, 2) {
            return Resolved::Uint(u);
        }
    } else if let Some(rest) = plain.strip_prefix("-0b") {
        if let Ok(i) = go_parse_int(&format!("-{rest}"), 2) {
            return Resolved::Int(i);
        }
    }
    if uint_err == NumErr::Range {
        return Resolved::BigInt;
    }
    Resolved::Str
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumErr {
    Syntax,
    Range,
}

/// Go's `strconv.ParseUint(s, base, 64)` for base 0 (prefixes) or an explicit base, on text
/// without underscores.
fn go_parse_uint(s: &str, base: u32) -> Result<u64, NumErr> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err(NumErr::Syntax);
    }
    let (base, digits) = if base == 0 {
        if b[0] == b'0' {
            let prefix = b.get(1).map(u8::to_ascii_lowercase);
            match prefix {
                Some(b'b') if b.len() >= 3 => (2, &b[2..]),
                Some(b'o') if b.len() >= 3 => (8, &b[2..]),
                Some(b'x') if b.len() >= 3 => (16, &b[2..]),
                _ => (8, &b[1..]),
            }
        } else {
            (10, b)
        }
    } else {
        (base, b)
    };
    let mut n: u64 = 0;
    let mut range = false;
    for &c in digits {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'z' => c - b'a' + 10,
            b'A'..=b'Z' => c - b'A' + 10,
            _ => return Err(NumErr::Syntax),
        };
        if u32::from(d) >= base {
            return Err(NumErr::Syntax);
        }
        if range {
            continue;
        }
        match n.checked_mul(u64::from(base)).and_then(|m| m.checked_add(u64::from(d))) {
            Some(v) => n = v,
            None => range = true,
        }
    }
    if range {
        Err(NumErr::Range)
    } else {
        Ok(n)
    }
}

/// Go's `strconv.ParseInt(s, base, 64)`.
fn go_parse_int(s: &str, base: u32) -> Result<i64, NumErr> {
    let (neg, rest) = match s.as_bytes().first() {
        None => return Err(NumErr::Syntax),
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        Some(_) => (false, s),
    };
    let un = match go_parse_uint(rest, base) {
        Ok(u) => u,
        Err(NumErr::Range) => return Err(NumErr::Range),
        Err(NumErr::Syntax) => return Err(NumErr::Syntax),
    };
    if neg {
        if un == 1u64 << 63 {
            Ok(i64::MIN)
        } else {
            i64::try_from(un).map(|v| -v).map_err(|_| NumErr::Range)
        }
    } else {
        i64::try_from(un).map_err(|_| NumErr::Range)
    }
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn matches_yaml_float(s: &[u8]) -> bool {
    let n = s.len();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < n && s[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < n && (s[i] == b'+' || s[i] == b'-') {
        i += 1;
    }
    if i < n && s[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < n && s[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < n && (s[i] == b'e' || s[i] == b'E') {
        i += 1;
        if i < n && (s[i] == b'+' || s[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == n
}

/// Go's `strconv.ParseFloat(s, 64)` for text starting with `.` (go-yaml's '.' case), which may
/// hold underscores between digits. Out-of-range values fail, as in Go.
fn parse_dot_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let n = b.len();
    let mut i = 1;
    let mut digits = 0;
    while i < n && (b[i].is_ascii_digit() || b[i] == b'_') {
        if b[i] != b'_' {
            digits += 1;
        }
        i += 1;
    }
    if digits == 0 {
        return None;
    }
    if i < n && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < n && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if i >= n || !b[i].is_ascii_digit() {
            return None;
        }
        while i < n && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    if i != n {
        return None;
    }
    let f = if s.contains('_') {
        if !go_underscore_ok(b) {
            return None;
        }
        s.replace('_', "").parse::<f64>().ok()?
    } else {
        s.parse::<f64>().ok()?
    };
    f.is_finite().then_some(f)
}

/// Go's `underscoreOK` for decimal text: underscores only between digits.
fn go_underscore_ok(s: &[u8]) -> bool {
    let s = match s.first() {
        Some(b'+' | b'-') => &s[1..],
        _ => s,
    };
    let mut saw = b'^';
    for &c in s {
        if c.is_ascii_digit() {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
    }
    saw != b'_'
}

/// Shortens text for an error message.
fn shorten(s: &str) -> String {
    const MAX: usize = 60;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// Render a value as YAML that go-yaml v2 / kubectl reads back to exactly the same JSON value.
/// Deterministic. Keys in the map's own order (serde_json `preserve_order`).
///
/// Block style with two-space indentation, sequences under a key at the key's indentation (as
/// kubectl prints them), `{}` and `[]` for empty collections, no `---` header, and a final
/// newline.
#[must_use]
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0, false),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0, false),
        _ => write_scalar(&mut out, value, 2, false),
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Right after `key:`.
    MapValue,
    /// Right after `-` (or after the `:` of an explicit `? key`).
    Compact,
}

fn push_indent(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// Writes the value of an entry whose indicator (`key:` or `-`) was just written, at an entry
/// column of `indent`, up to and including the final newline.
fn write_entry_value(out: &mut String, value: &Value, indent: usize, slot: Slot) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            if slot == Slot::MapValue {
                out.push('\n');
                write_map(out, map, indent + 2, false);
            } else {
                out.push(' ');
                write_map(out, map, indent + 2, true);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            if slot == Slot::MapValue {
                out.push('\n');
                write_seq(out, items, indent, false);
            } else {
                out.push(' ');
                write_seq(out, items, indent + 2, true);
            }
        }
        _ => {
            out.push(' ');
            write_scalar(out, value, indent + 2, true);
        }
    }
}

/// Longest rendered key written as an implicit `key:`; YAML limits those to 1024 characters.
const MAX_IMPLICIT_KEY: usize = 512;

fn write_map(out: &mut String, map: &Map<String, Value>, indent: usize, first_inline: bool) {
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 || !first_inline {
            push_indent(out, indent);
        }
        let start = out.len();
        write_flow_string(out, key);
        if out.len() - start > MAX_IMPLICIT_KEY {
            out.insert_str(start, "? ");
            out.push('\n');
            push_indent(out, indent);
            out.push(':');
            write_entry_value(out, value, indent, Slot::Compact);
        } else {
            out.push(':');
            write_entry_value(out, value, indent, Slot::MapValue);
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], indent: usize, first_inline: bool) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !first_inline {
            push_indent(out, indent);
        }
        out.push('-');
        write_entry_value(out, item, indent, Slot::Compact);
    }
}

/// Writes a scalar (or an empty collection) and a newline. A literal block's content goes at
/// column `content_indent`; `indicator_ok` tells whether an indentation indicator of
/// 2 would put it there (everywhere but at the top level).
fn write_scalar(out: &mut String, value: &Value, content_indent: usize, indicator_ok: bool) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => {
            if write_literal_block(out, s, content_indent, indicator_ok) {
                // A literal block ends with its own newline.
                return;
            }
            write_flow_string(out, s);
        }
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
    out.push('\n');
}

fn write_number(out: &mut String, n: &Number) {
    if let Some(i) = n.as_i64() {
        out.push_str(&i.to_string());
    } else if let Some(u) = n.as_u64() {
        out.push_str(&u.to_string());
    } else {
        out.push_str(&format_float(n.as_f64().unwrap_or(0.0)));
    }
}

/// A float that every reader takes for a float and for exactly this f64: the shortest
/// round-trip digits, always with a `.`, and a signed exponent when there is one.
fn format_float(f: f64) -> String {
    let abs = f.abs();
    if abs == 0.0 || (1e-4..1e16).contains(&abs) {
        let mut s = f.to_string();
        if !s.contains('.') {
            s.push_str(".0");
        }
        s
    } else {
        let s = format!("{f:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
        let dot = if mantissa.contains('.') { "" } else { ".0" };
        let sign = if exp.starts_with('-') { "" } else { "+" };
        format!("{mantissa}{dot}e{sign}{exp}")
    }
}

/// Writes a string plain when that is obviously safe, else double-quoted.
fn write_flow_string(out: &mut String, s: &str) {
    if is_plain_safe(s) {
        out.push_str(s);
    } else {
        write_double_quoted(out, s);
    }
}

/// Whether `s` can be written as a plain scalar and read back as this same string by go-yaml v2,
/// YAML 1.1 loaders (PyYAML) and YAML 1.2 loaders alike.
fn is_plain_safe(s: &str) -> bool {
    let b = s.as_bytes();
    let Some(&first) = b.first() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || first == b'/') {
        return false;
    }
    if b.last() == Some(&b' ') || s.contains("  ") {
        return false;
    }
    if !b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'/' | b'-' | b' ')) {
        return false;
    }
    if b.len() <= 5 {
        let lower = s.to_ascii_lowercase();
        if matches!(lower.as_str(), "y" | "n" | "yes" | "no" | "true" | "false" | "on" | "off" | "null") {
            return false;
        }
    }
    resolve_plain(s) == Resolved::Str
}

/// Whether a character must be escaped in a double-quoted scalar, and cannot appear in a
/// literal block: YAML's non-printable characters, and the characters YAML 1.1 treats as line
/// breaks or that readers drop (BOM).
fn is_special_char(c: char) -> bool {
    (c < ' ' && c != '\t' && c != '\n')
        || ('\u{7f}'..='\u{9f}').contains(&c)
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}')
}

fn write_double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if is_special_char(c) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes `s` as a literal block scalar (`|`, `|-`, `|+`) when it has line breaks and a literal
/// block carries it exactly; returns false (writing nothing) otherwise.
fn write_literal_block(out: &mut String, s: &str, content_indent: usize, indicator_ok: bool) -> bool {
    if !s.contains('\n') {
        return false;
    }
    let body = s.trim_end_matches('\n');
    if body.is_empty() || body.chars().any(|c| c == '\r' || is_special_char(c)) {
        return false;
    }
    // Like go-yaml's emitter: no trailing white space on a line (editors and some tools strip it).
    if body.split('\n').any(|line| line.ends_with(' ') || line.ends_with('\t')) {
        return false;
    }
    // Auto-detected indentation comes from the first non-empty line; one starting with white
    // space needs an explicit indicator.
    let needs_indicator =
        body.split('\n').find(|line| !line.is_empty()).is_some_and(|line| line.starts_with([' ', '\t']));
    if needs_indicator && !indicator_ok {
        return false;
    }
    let trailing = s.len() - body.len();
    out.push('|');
    if needs_indicator {
        out.push('2');
    }
    match trailing {
        0 => out.push('-'),
        1 => {}
        _ => out.push('+'),
    }
    out.push('\n');
    for line in body.split('\n') {
        if !line.is_empty() {
            push_indent(out, content_indent);
            out.push_str(line);
        }
        out.push('\n');
    }
    for _ in 1..trailing {
        out.push('\n');
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(text: &str) -> Value {
        let docs = parse_documents(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(docs.len(), 1, "{text:?}");
        docs.into_iter().next().map(|d| d.value).unwrap_or_default()
    }

    fn err(text: &str) -> YamlError {
        match parse_documents(text) {
            Ok(docs) => panic!("{text:?} parsed: {docs:?}"),
            Err(e) => e,
        }
    }

    /// Every plain scalar as go-yaml v2 + sigs.k8s.io/yaml read it, as the value of a key.
    #[test]
    fn scalar_table() {
        let table: &[(&str, Value)] = &[
            // null
            ("", json!(null)),
            ("~", json!(null)),
            ("null", json!(null)),
            ("Null", json!(null)),
            ("NULL", json!(null)),
            ("nULL", json!("nULL")),
            // bool
            ("y", json!(true)),
            ("Y", json!(true)),
            ("yes", json!(true)),
            ("Yes", json!(true)),
            ("YES", json!(true)),
            ("true", json!(true)),
            ("True", json!(true)),
            ("TRUE", json!(true)),
            ("on", json!(true)),
            ("On", json!(true)),
            ("ON", json!(true)),
            ("n", json!(false)),
            ("N", json!(false)),
            ("no", json!(false)),
            ("No", json!(false)),
            ("NO", json!(false)),
            ("false", json!(false)),
            ("False", json!(false)),
            ("FALSE", json!(false)),
            ("off", json!(false)),
            ("Off", json!(false)),
            ("OFF", json!(false)),
            ("yEs", json!("yEs")),
            ("tRUE", json!("tRUE")),
            ("yes please", json!("yes please")),
            // int
            ("0", json!(0)),
            ("-0", json!(0)),
            ("00", json!(0)),
            ("12", json!(12)),
            ("+12", json!(12)),
            ("-12", json!(-12)),
            ("0644", json!(420)),
            ("0755", json!(493)),
            ("0600", json!(384)),
            ("0o17", json!(15)),
            ("0O17", json!(15)),
            ("0x1F", json!(31)),
            ("0X1f", json!(31)),
            ("-0x10", json!(-16)),
            ("0b101", json!(5)),
            ("0B101", json!(5)),
            ("-0b101", json!(-5)),
            ("0b-101", json!(-5)),
            ("1_000", json!(1000)),
            ("1__0_", json!(10)),
            ("9223372036854775807", json!(i64::MAX)),
            ("-9223372036854775808", json!(i64::MIN)),
            ("9223372036854775808", json!(9_223_372_036_854_775_808_u64)),
            ("18446744073709551615", json!(u64::MAX)),
            ("0xFFFFFFFFFFFFFFFF", json!(u64::MAX)),
            // float
            ("09", json!(9.0)),
            ("08.5", json!(8.5)),
            ("1.5", json!(1.5)),
            ("1.0", json!(1.0)),
            ("1.", json!(1.0)),
            (".5", json!(0.5)),
            ("+.5", json!(0.5)),
            ("-.5", json!(-0.5)),
            (".5_0", json!(0.5)),
            (".5e1", json!(5.0)),
            ("1e3", json!(1000.0)),
            ("1E3", json!(1000.0)),
            ("1e+3", json!(1000.0)),
            ("1.5e-3", json!(0.0015)),
            ("1_000.5", json!(1000.5)),
            ("0.0", json!(0.0)),
            ("18446744073709551616", json!(18_446_744_073_709_551_616.0)),
            ("-9223372036854775809", json!(-9_223_372_036_854_775_809.0)),
            ("+18446744073709551615", json!(18_446_744_073_709_551_615.0)),
            ("1e-400", json!(0.0)),
            // strings
            ("1e400", json!("1e400")),
            (".5e400", json!(".5e400")),
            ("._5", json!("._5")),
            (".", json!(".")),
            ("+", json!("+")),
            ("0x", json!("0x")),
            ("0b", json!("0b")),
            ("0o", json!("0o")),
            ("0xG", json!("0xG")),
            ("1:20", json!("1:20")),
            ("12:30:00", json!("12:30:00")),
            ("2024-01-01", json!("2024-01-01")),
            ("2001-12-14", json!("2001-12-14")),
            ("2024-01-01T00:00:00Z", json!("2024-01-01T00:00:00Z")),
            ("2001-12-14 21:59:43.10 -5", json!("2001-12-14 21:59:43.10 -5")),
            ("=", json!("=")),
            ("<<", json!("<<")),
            (".nanx", json!(".nanx")),
            ("-.nan", json!("-.nan")),
            ("1.2.3", json!("1.2.3")),
            ("v1", json!("v1")),
            ("100Mi", json!("100Mi")),
            ("500m", json!("500m")),
            ("0.5Gi", json!("0.5Gi")),
            ("1e", json!("1e")),
            ("abc def", json!("abc def")),
            // quoted and block scalars are strings
            ("\"0644\"", json!("0644")),
            ("'yes'", json!("yes")),
            ("\"\"", json!("")),
            ("''", json!("")),
            ("\"null\"", json!("null")),
            ("\"~\"", json!("~")),
            ("|\n  yes\n", json!("yes\n")),
            (">-\n  12\n", json!("12")),
            // tags
            ("!!str 123", json!("123")),
            ("!!str", json!("")),
            ("!!str yes", json!("yes")),
            ("!!int \"12\"", json!(12)),
            ("!!int 0x10", json!(16)),
            ("!!float 1", json!(1.0)),
            ("!!float '1.5'", json!(1.5)),
            ("!!bool yes", json!(true)),
            ("!!bool \"off\"", json!(false)),
            ("!!null ~", json!(null)),
            ("!!null", json!(null)),
            ("!!binary aGk=", json!("aGk=")),
            ("!!timestamp 2001-12-14", json!("2001-12-14")),
            ("!foo 12", json!("12")),
            ("! 12", json!("12")),
            ("!<tag:yaml.org,2002:int> '7'", json!(7)),
            ("!!map {a: 1}", json!({"a": 1})),
            ("!!seq [1]", json!([1])),
            ("!foo {a: yes}", json!({"a": true})),
        ];
        for (input, expected) in table {
            let got = one(&format!("v: {input}\n"));
            assert_eq!(got["v"], *expected, "input {input:?}");
            // The same value at the top level and in a flow sequence.
            if !input.contains('\n') && !input.is_empty() {
                assert_eq!(one(input), *expected, "top-level {input:?}");
                let seq = one(&format!("[{input}]"));
                assert_eq!(seq, json!([expected]), "in a flow sequence {input:?}");
            }
        }
        // Integral floats stay floats, integers stay integers.
        assert!(one("1.0").is_f64());
        assert!(one("09").is_f64());
        assert!(one("1").is_i64());
        assert!(one("18446744073709551615").is_u64());
    }

    #[test]
    fn scalar_errors() {
        let table: &[(&str, &str)] = &[
            (".inf", "infinity"),
            ("-.Inf", "infinity"),
            ("+.INF", "infinity"),
            (".nan", "NaN"),
            ("!!float .inf", "infinity"),
            ("0x1FFFFFFFFFFFFFFFF", "64 bits"),
            ("!!int abc", "cannot read \"abc\" as !!int"),
            ("!!int 1.5", "as !!int"),
            ("!!int", "as !!int"),
            ("!!float yes", "as !!float"),
            ("!!float 18446744073709551615", "as !!float"),
            ("!!bool 1", "as !!bool"),
            ("!!null 0", "as !!null"),
        ];
        for (input, message) in table {
            let e = err(&format!("a: 1\nv: {input}\n"));
            let text = e.to_string();
            assert!(text.starts_with("line 2: "), "{input:?}: {text}");
            assert!(text.contains(message), "{input:?}: {text}");
            assert!(!text.contains('\n'), "{text}");
        }
    }

    #[test]
    fn key_table() {
        let table: &[(&str, &str)] = &[
            ("a", "a"),
            ("\"a b\"", "a b"),
            ("1", "1"),
            ("-1", "-1"),
            ("0x10", "16"),
            ("0644", "420"),
            ("true", "true"),
            ("yes", "true"),
            ("N", "false"),
            ("1.5", "1.5"),
            ("0.1", "0.1"),
            ("1.0", "1"),
            ("09", "9"),
            ("1e6", "1e+06"),
            ("1234567.0", "1.234567e+06"),
            ("123456.0", "123456"),
            ("3.14159265358979", "3.1415927"),
            ("0.0001", "0.0001"),
            ("0.00001", "1e-05"),
            ("1e40", ".inf"),
            ("0.0", "0"),
            ("-0.0", "-0"),
            ("-1.5e-7", "-1.5e-07"),
            ("1e100", ".inf"),
            ("1.5e30", "1.5e+30"),
            (".inf", ".inf"),
            ("-.inf", "-.inf"),
            (".NaN", ".nan"),
            ("\"~\"", "~"),
            ("\"<<\"", "<<"),
            ("!!str 1", "1"),
            ("2024-01-01", "2024-01-01"),
            ("9223372036854775807", "9223372036854775807"),
        ];
        for (input, expected) in table {
            let got = one(&format!("{input}: v\n"));
            assert_eq!(got, json!({ *expected: "v" }), "key {input:?}");
            let got = one(&format!("{{{input}: v}}"));
            assert_eq!(got, json!({ *expected: "v" }), "flow key {input:?}");
        }
        assert!(matches!(err("!!null x: v\n"), YamlError::UnsupportedTag { line: 1, .. }));
        for input in ["~", "null", "18446744073709551615", "!!null ''"] {
            let e = err(&format!("{input}: v\n"));
            assert!(matches!(e, YamlError::Unsupported { line: 1, .. }), "{input:?}: {e}");
        }
        assert!(matches!(err("? [a]\n: b\n"), YamlError::ComplexKey { line: 1, kind: "sequence" }));
        assert!(matches!(err("{[a]: b}"), YamlError::ComplexKey { .. }));
        assert!(matches!(err("? {a: 1}\n: b\n"), YamlError::ComplexKey { kind: "mapping", .. }));
        assert!(matches!(err("x: &k [1]\n*k : b\n"), YamlError::ComplexKey { line: 2, .. }));
        // An anchored key used as a key or as a value elsewhere.
        assert_eq!(
            one("&k 1: a\nc: *k\nd: {*k : b}\n&f 1.5: x\ne: {*f : z}\n"),
            json!({"1": "a", "c": 1, "d": {"1": "b"}, "1.5": "x", "e": {"1.5": "z"}})
        );
        assert_eq!(one("&i .inf : a\ne: {*i : b}\n"), json!({".inf": "a", "e": {".inf": "b"}}));
        assert!(matches!(err("&i .inf : a\ne: *i\n"), YamlError::Unsupported { line: 2, .. }));
    }

    #[test]
    fn duplicate_keys() {
        let e = err("a: 1\nb: 2\na: 3\n");
        assert_eq!(e, YamlError::DuplicateKey { line: 3, key: "a".to_owned() });
        assert_eq!(e.to_string(), "line 3: mapping key \"a\" is defined more than once");
        // Distinct YAML keys that become the same JSON key.
        assert!(matches!(err("1: a\n\"1\": b\n"), YamlError::DuplicateKey { line: 2, .. }));
        assert!(matches!(err("0x10: a\n16: b\n"), YamlError::DuplicateKey { .. }));
        assert!(matches!(err("{a: 1, a: 2}"), YamlError::DuplicateKey { .. }));
        assert!(matches!(err("x:\n  - a: 1\n    a: 1\n"), YamlError::DuplicateKey { line: 3, .. }));
    }

    #[test]
    fn anchors_and_merges() {
        let text = "\
base: &b {x: 1, why: 2}
copy: *b
list: &l [1, 2]
l2: *l
s: &s hello
s2: *s
n: &n 0644
n2: *n
q: &q '0644'
q2: *q
re: &s again
re2: *s
";
        assert_eq!(
            one(text),
            json!({
                "base": {"x": 1, "why": 2}, "copy": {"x": 1, "why": 2},
                "list": [1, 2], "l2": [1, 2], "s": "hello", "s2": "hello",
                "false": 420, "n2": 420, "q": "0644", "q2": "0644", "re": "again", "re2": "again"
            })
        );
        let text = "\
a: &a {x: 1, w: 2}
b: &b {w: 3, z: 4}
c:
  <<: [*a, *b]
  z: 5
d:
  x: 0
  <<: *a
e:
  <<: {q: 1}
  r: 2
f:
  <<: [*b, *a]
g: !!map
  <<: *a
  w: 9
\"<<\": literal
";
        assert_eq!(
            one(text),
            json!({
                "a": {"x": 1, "w": 2}, "b": {"w": 3, "z": 4},
                "c": {"x": 1, "w": 2, "z": 5},
                "d": {"x": 0, "w": 2},
                "e": {"q": 1, "r": 2},
                "f": {"w": 3, "z": 4, "x": 1},
                "g": {"x": 1, "w": 9},
                "<<": "literal"
            })
        );
        assert!(matches!(err("a:\n  <<: 1\n"), YamlError::InvalidMerge { line: 2 }));
        assert!(matches!(err("a:\n  <<:\n"), YamlError::InvalidMerge { .. }));
        assert!(matches!(err("l: &l [{a: 1}]\nm:\n  <<: *l\n"), YamlError::InvalidMerge { line: 3 }));
        assert!(matches!(err("m:\n  <<: [{a: 1}, 2]\n"), YamlError::InvalidMerge { .. }));
        assert!(matches!(err("m: {<<: [[{a: 1}]]}\n"), YamlError::InvalidMerge { .. }));
        // An explicit key twice is still an error when merges are involved.
        assert!(matches!(err("a: &a {x: 1}\nm:\n  <<: *a\n  x: 2\n  x: 3\n"), YamlError::DuplicateKey { line: 5, .. }));
        // Aliases are per document.
        assert!(parse_documents("a: &x 1\n---\nb: *x\n").is_err());
        // An alias to the node that contains it.
        assert!(matches!(err("a: &a\n  b: *a\n"), YamlError::AliasLoop { line: 2 }));
        assert!(matches!(err("&a [1, [*a]]"), YamlError::AliasLoop { line: 1 }));
        assert!(parse_documents("a: *nope\n").is_err());
    }

    #[test]
    fn billion_laughs() {
        let text = "\
a: &a [00,00,00,00,00,00,00,00,00]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
";
        assert!(matches!(err(text), YamlError::AliasExpansion { .. }));
        // Few nodes, many bytes.
        let big = "x".repeat(1 << 20);
        let mut text = format!("a: &a {big}\nl:\n");
        for _ in 0..100 {
            text.push_str("- *a\n");
        }
        assert!(matches!(err(&text), YamlError::AliasExpansion { .. }));
        // Modest reuse is fine.
        let v = one("a: &a [1, 2, 3]\nb: [*a, *a, *a]\n");
        assert_eq!(v["b"], json!([[1, 2, 3], [1, 2, 3], [1, 2, 3]]));
    }

    #[test]
    fn deep_nesting() {
        // Flow collections: saphyr-parser stops at 255 levels.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(err(&deep), YamlError::TooDeep { line: 1 }));
        let deep = format!("{}1{}", "{a: ".repeat(5000), "}".repeat(5000));
        assert!(matches!(err(&deep), YamlError::TooDeep { .. }));
        let deep = format!("{}{}", "{\"a\": ".repeat(300), "}".repeat(300));
        assert!(matches!(err(&deep), YamlError::TooDeep { .. }));
        let mut mixed = String::new();
        for i in 0..900 {
            mixed.push_str(&" ".repeat(i));
            mixed.push_str("a:\n");
        }
        mixed.push_str(&" ".repeat(900));
        mixed.push_str(&format!("{}{}", "[".repeat(200), "]".repeat(200)));
        assert!(matches!(err(&mixed), YamlError::TooDeep { line: 901 }));
        let mut block = String::new();
        for i in 0..1500 {
            block.push_str(&" ".repeat(i));
            block.push_str("a:\n");
        }
        assert!(matches!(err(&block), YamlError::TooDeep { line: 1001 }));
        let mut block = String::new();
        for i in 0..1500 {
            block.push_str(&" ".repeat(i * 2));
            block.push_str("-\n");
        }
        assert!(matches!(err(&block), YamlError::TooDeep { .. }));
        // Just under the limit is fine.
        let mut ok = String::new();
        for i in 0..MAX_DEPTH {
            ok.push_str(&" ".repeat(i));
            ok.push_str("a:\n");
        }
        assert!(parse_documents(&ok).is_ok());
    }

    #[test]
    fn multi_document_streams() {
        let docs = parse_documents("a: 1\n---\nb: 2\n...\n---\n# only a comment\n...\n--- null\n--- ~\nc: yes\n").err();
        // `--- ~` followed by a mapping is not valid YAML.
        assert!(docs.is_some());

        let docs = parse_documents(
            "# leading comment\na: 1\n---\nb: 2\n...\n---\n# only a comment\n...\n--- null\n---\nc: yes\n---\n",
        )
        .unwrap_or_default();
        let got: Vec<(Value, usize, usize)> = docs.into_iter().map(|d| (d.value, d.line, d.index)).collect();
        assert_eq!(
            got,
            vec![
                (json!({"a": 1}), 2, 0),
                (json!({"b": 2}), 3, 1),
                (json!(null), 6, 2),
                (json!(null), 9, 3),
                (json!({"c": true}), 10, 4),
                (json!(null), 12, 5),
            ]
        );
        for empty in ["", "\n", "# just a comment\n", "\u{feff}", "---\n", "...\n"] {
            let docs = parse_documents(empty).unwrap_or_default();
            assert_eq!(docs.len(), 1, "{empty:?}");
            assert_eq!(docs[0].value, Value::Null, "{empty:?}");
        }
        let docs = parse_documents("--- |\n  text\n--- >\n  folded\n  text\n").unwrap_or_default();
        let values: Vec<Value> = docs.into_iter().map(|d| d.value).collect();
        assert_eq!(values, vec![json!("text\n"), json!("folded text\n")]);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = err("a: 1\nb: [1, 2\nc: 3\n");
        assert!(matches!(e, YamlError::Syntax { .. }), "{e}");
        let e = err("a: 1\n  b: 2\n");
        match &e {
            YamlError::Syntax { line, col, .. } => assert_eq!((*line, *col), (2, 4), "{e}"),
            other => panic!("{other}"),
        }
        assert!(e.to_string().starts_with("YAML syntax error at line 2, column 4: "));
        assert!(parse_documents("a: 'unterminated\n").is_err());
        assert!(parse_documents("a: \"bad \\q escape\"\n").is_err());
        assert!(parse_documents("- a\nb: c\n").is_err());
    }

    #[test]
    fn flow_style_and_json() {
        assert_eq!(
            one("{a: [1, {b: c}], \"d\": 'e', f: [], g: {}, h: [yes, ~, 0644]}"),
            json!({"a": [1, {"b": "c"}], "d": "e", "f": [], "g": {}, "h": [true, null, 420]})
        );
        let texts = [
            r#"{"a":1,"b":[true,false,null],"c":{"d":"e\u00e9\ud83d\ude00\n\t\"\\\/"},"":""}"#,
            r#"{"n":[0,1.0,-1.5,1e3,1E-3,12345678901234567890,-9223372036854775809,0.1]}"#,
            r#"[{"yes":"no","on":"off","0644":"0644","~":null,"y":"n"}, [], {}, "", [[[]]]]"#,
            "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"List\",\n  \"items\": [\n    {\"a\": 1}\n  ]\n}\n",
            r#""just a string""#,
            "123",
            "null",
            r#"{"a":"multi\nline","b":"  lead","c":"\u0001"}"#,
        ];
        for text in texts {
            let expected: Value = serde_json::from_str(text).unwrap_or_default();
            assert_eq!(one(text), expected, "{text}");
        }
        // Where serde_json differs from go-yaml: `-0` is go-yaml's integer 0, and long numbers
        // are rounded correctly (serde_json without `float_roundtrip` may be 1 ULP off).
        assert_eq!(one("[-0]"), json!([0]));
        assert_eq!(one("[123456789012345678901234]"), json!([1.234_567_890_123_456_9e23]));
        // JSON with escaped surrogate pairs is not YAML; it is still read as JSON.
        let docs = parse_documents("\n\n {\"e\": \"\\ud83d\\ude00\"}").unwrap_or_default();
        assert_eq!(docs, vec![Document { value: json!({"e": "😀"}), line: 3, index: 0 }]);
    }

    #[test]
    fn whitespace_bom_crlf_and_tabs() {
        assert_eq!(one("\u{feff}a: 1\n"), json!({"a": 1}));
        assert_eq!(
            one("a: 1\r\nb:\r\n  - x\r\n  - \"q\r\n    r\"\r\nc: |\r\n  l1\r\n  l2\r\n"),
            json!({"a": 1, "b": ["x", "q r"], "c": "l1\nl2\n"})
        );
        // go-yaml accepts `key:<TAB>value`; saphyr-parser rejects a tab right after the `:` when
        // the value starts with a letter, a digit or `-` (a known difference).
        assert!(matches!(err("a:\t1\n"), YamlError::Syntax { line: 1, .. }));
        assert_eq!(one("a: \t1\n"), json!({"a": 1}));
        assert_eq!(one("a:\t\"x\"\n"), json!({"a": "x"}));
        assert_eq!(one("a:\t[1]\n"), json!({"a": [1]}));
        assert_eq!(one("a: b\tc\n"), json!({"a": "b\tc"}));
        assert_eq!(one("a: \"b\\tc\"\n"), json!({"a": "b\tc"}));
        assert_eq!(one("a: |\n  \tx\n"), json!({"a": "\tx\n"}));
        assert_eq!(one("a: 1 # comment\t\n"), json!({"a": 1}));
        assert!(parse_documents("a:\n\tb: 1\n").is_err());
    }

    /// Indentation that the YAML spec (and saphyr-parser) rejects but libyaml, and so
    /// Kubernetes, accepts.
    #[test]
    fn libyaml_leniency() {
        let table: &[(&str, Value)] = &[
            ("- a: 'x\n  y'\n", json!([{"a": "x y"}])),
            ("a: 'x\ny'\n", json!({"a": "x y"})),
            ("a: 'it''s\nfine'\n", json!({"a": "it's fine"})),
            ("b:\n  a: \"x\n  y \\\" z\n  w\"\n  c: 1\n", json!({"b": {"a": "x y \" z w", "c": 1}})),
            ("args: [\n  \"a\",\n  \"b\"\n]\nx: 1\n", json!({"args": ["a", "b"], "x": 1})),
            ("k:\n  args: [\n    a, b,\n  c]\n", json!({"k": {"args": ["a", "b", "c"]}})),
            ("k:\n  m: {a: 1,\n  b: 2\n  }\n", json!({"k": {"m": {"a": 1, "b": 2}}})),
            ("a: ['x\ny', z\n]\n", json!({"a": ["x y", "z"]})),
            // A guess that would touch a block scalar is discarded.
            ("a: 'x\ny'\ns: |\n  k: 'open\n  close'\n", json!({"a": "x y", "s": "k: 'open\nclose'\n"})),
        ];
        for (input, expected) in table {
            assert_eq!(one(input), *expected, "{input:?}");
        }
        // Many of them (as in generated CRDs) are repaired at once.
        let mut text = String::from("spec:\n");
        let mut expected = Map::new();
        for i in 0..500 {
            text.push_str(&format!("  d{i}: 'first line\n  second ''line'' {i}'\n"));
            expected.insert(format!("d{i}"), json!(format!("first line second 'line' {i}")));
        }
        assert_eq!(one(&text), json!({ "spec": expected }));
        // Line numbers are unchanged by the repairs.
        let e = err("a: 'x\ny'\nb: [\n1,\n]\nc: 1\nc: 2\n");
        assert!(matches!(e, YamlError::DuplicateKey { line: 7, .. }), "{e}");
    }

    /// A block scalar that ends the input without a line break has no final line break.
    #[test]
    fn block_scalar_at_end_of_input() {
        let table: &[(&str, &str)] = &[
            ("a: |\n  x", "x"),
            ("a: |+\n  x", "x"),
            ("a: |\n  x\n\n  y", "x\n\ny"),
            ("a: >\n  x\n  y", "x y"),
            ("a: |\n  x\n  ", "x\n"),
            ("a: |+\n  x\n\n  ", "x\n\n"),
            ("a: |\n  x  ", "x  "),
            ("a: |\n  x\n ", "x\n"),
            ("a: |+\n  ", ""),
            ("a: |-\n  x\n", "x"),
            ("a: |\n  x\n", "x\n"),
            ("a: &x |\n  x", "x"),
        ];
        for (input, expected) in table {
            assert_eq!(one(input), json!({"a": expected}), "{input:?}");
        }
        assert_eq!(one("a: |\n  x\nb: |\n  y"), json!({"a": "x\n", "b": "y"}));
    }

    /// Strings that a careless writer gets wrong.
    fn tricky_strings() -> Vec<String> {
        let mut v: Vec<String> = [
            "y",
            "Y",
            "yes",
            "Yes",
            "YES",
            "n",
            "N",
            "no",
            "No",
            "NO",
            "true",
            "True",
            "TRUE",
            "false",
            "False",
            "FALSE",
            "on",
            "On",
            "ON",
            "off",
            "Off",
            "OFF",
            "null",
            "Null",
            "NULL",
            "~",
            "yEs",
            "nO",
            "tRuE",
            "nuLL",
            "0644",
            "0755",
            "1_000",
            "1e3",
            "1E3",
            "0x10",
            "0o17",
            "0b101",
            ".5",
            "+1",
            "-1",
            "1",
            "1.0",
            "09",
            "1:20",
            "12:30:00",
            "190:20:30",
            "2024-01-01",
            "2024-01-01T00:00:00Z",
            "",
            " ",
            " lead",
            "trail ",
            "a: b",
            "a:b",
            "a #b",
            "a#b",
            "#x",
            "- x",
            "-",
            "--",
            "---",
            "...",
            "[x]",
            "{x}",
            "*x",
            "&x",
            "!x",
            "%x",
            "@x",
            "`x",
            "|",
            ">",
            "'",
            "\"",
            "?",
            "? x",
            ":",
            ",",
            "x,",
            "multi\nline",
            "multi\nline\n",
            "multi\n\n\n",
            "\n",
            "\n\n",
            "\nlead",
            " indented\nfirst",
            "\tindented\nfirst",
            "a\n  b\n",
            "a\n\n\nb",
            "trailing space \nx",
            "tab\t\nx",
            "tab\there",
            "\u{1}",
            "\u{7f}",
            "\u{85}",
            "\u{a0}",
            "\u{2028}",
            "\u{feff}x",
            "é ü 中",
            "😀 emoji",
            "<<",
            "=",
            "!",
            "&",
            "*",
            ".inf",
            "-.inf",
            ".nan",
            ".NaN",
            "a\r\nb",
            "back\\slash",
            "quote\"d",
            "it's",
            "a  b",
            "a b",
            "a b c",
            "/path/to x",
            "http://example.com/x",
            "nginx:1.25",
            "100Mi",
            "500m",
            "v1",
            "apps/v1",
            "x\u{0}y",
            "line\n---\nnext",
            "line\n...\n",
            "#!/bin/sh\necho hi\n",
            "key: value\nother: x\n",
            "  both  \n  sides  ",
            "-x",
            "x-",
            "_x",
            "x_",
            "x.y.z",
            "Yes please",
            "ON AIR",
            "null-ish",
            "None",
            "none",
            "NaN",
            "nan",
            "inf",
            "Infinity",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        v.push("long ".repeat(400));
        v.push(format!("{}\n", "x".repeat(5000)));
        v.push("k".repeat(2000));
        v
    }

    fn tricky_values() -> Vec<Value> {
        let strings = tricky_strings();
        let mut map = Map::new();
        for s in &strings {
            map.insert(s.clone(), Value::String(s.clone()));
        }
        let numbers = json!([
            0,
            -1,
            1,
            i64::MAX,
            i64::MIN,
            u64::MAX,
            1.0,
            -0.5,
            0.1,
            1e300,
            -1e300,
            5e-324,
            1e16,
            1e15,
            9_007_199_254_740_993.0,
            1e-5,
            1e-4,
            123_456_789.123,
            f64::MAX,
            f64::MIN_POSITIVE,
            -0.0,
            2.5e-10,
            1e21
        ]);
        let manifest = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "x", "labels": {"app": "web", "on": "yes"}, "annotations": {}},
            "data": {"script.sh": "#!/bin/sh\necho \"hi\"\n", "mode": "0644", "empty": ""},
            "list": [[], {}, [1, [2, [3, {}]]], {"a": [{"b": []}]}, null, true, "x"],
            "nested": [[["deep", {"k": "v", "k2": ["a", "b"]}]]],
            "blocks": [" indented\nfirst", {"k": " indented\nfirst\n", "m": "multi\n\n\n"}],
        });
        let mut values = vec![
            Value::Object(map.clone()),
            Value::Array(strings.iter().cloned().map(Value::String).collect()),
            numbers,
            manifest,
            json!({}),
            json!([]),
            json!(null),
            json!(true),
            json!(1.5),
            json!([[]]),
            json!([{}]),
            json!([[1, 2], [3]]),
            json!({"a": [[{"b": "multi\nline"}]]}),
        ];
        values.extend(strings.into_iter().map(Value::String));
        values.push(json!({ "k".repeat(2000): {"a": 1, "b": [1, 2]}, "x": 1 }));
        values.push(json!({ "k".repeat(2000): [1, {"c": "multi\nline"}] }));
        values.push(json!({ "k".repeat(2000): " indented\nfirst" }));
        values
    }

    #[test]
    fn round_trip() {
        for value in tricky_values() {
            let text = to_yaml(&value);
            assert!(text.ends_with('\n'), "{text:?}");
            assert!(!text.starts_with("---"), "{text:?}");
            let docs = parse_documents(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(docs.len(), 1, "{text}");
            assert_eq!(docs[0].value, value, "{text}");
            // Floats stay floats, integers stay integers.
            assert_eq!(docs[0].value.to_string(), value.to_string(), "{text}");
            assert_eq!(to_yaml(&docs[0].value), text, "not deterministic");
        }
    }

    #[test]
    fn writes_like_kubectl() {
        let value = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "yes"}},
            "spec": {
                "containers": [{
                    "name": "web",
                    "image": "nginx:1.25",
                    "ports": [{"containerPort": 80}],
                    "args": [],
                    "command": ["sh", "-c", "echo hi\necho there\n"],
                    "resources": {},
                }],
                "volumes": [{"name": "v", "configMap": {"defaultMode": 420, "name": "cm"}}],
                "matrix": [[1, 2], [], [{"a": 1.0}]],
                "text": " indented\nsecond",
            },
        });
        let expected = "\
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
    tier: \"yes\"
spec:
  containers:
  - name: web
    image: \"nginx:1.25\"
    ports:
    - containerPort: 80
    args: []
    command:
    - sh
    - \"-c\"
    - |
      echo hi
      echo there
    resources: {}
  volumes:
  - name: v
    configMap:
      defaultMode: 420
      name: cm
  matrix:
  - - 1
    - 2
  - []
  - - a: 1.0
  text: |2-
     indented
    second
";
        assert_eq!(to_yaml(&value), expected);
        assert_eq!(to_yaml(&json!("x")), "x\n");
        assert_eq!(to_yaml(&json!(null)), "null\n");
        assert_eq!(to_yaml(&json!({})), "{}\n");
        assert_eq!(to_yaml(&json!([])), "[]\n");
        assert_eq!(to_yaml(&json!("a\nb")), "|-\n  a\nb\n".replace("\nb", "\n  b"));
        assert_eq!(to_yaml(&json!(" a\nb")), "\" a\\nb\"\n");
    }

    #[test]
    fn writes_numbers() {
        let table: &[(Value, &str)] = &[
            (json!(0), "0"),
            (json!(-1), "-1"),
            (json!(u64::MAX), "18446744073709551615"),
            (json!(1.0), "1.0"),
            (json!(-0.5), "-0.5"),
            (json!(0.1), "0.1"),
            (json!(1e300), "1.0e+300"),
            (json!(1.5e-300), "1.5e-300"),
            (json!(5e-324), "5.0e-324"),
            (json!(1e15), "1000000000000000.0"),
            (json!(1e16), "1.0e+16"),
            (json!(0.0001), "0.0001"),
            (json!(0.00001), "1.0e-5"),
            (json!(-0.0), "-0.0"),
        ];
        for (value, expected) in table {
            assert_eq!(to_yaml(value), format!("{expected}\n"));
        }
    }

    #[test]
    fn writes_strings() {
        let table: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("a b/c.d-e_f", "a b/c.d-e_f"),
            ("/usr/bin", "/usr/bin"),
            ("yes", "\"yes\""),
            ("Null", "\"Null\""),
            ("0644", "\"0644\""),
            ("", "\"\""),
            ("a  b", "\"a  b\""),
            ("é", "\"é\""),
            ("tab\there", "\"tab\\there\""),
            ("\u{1}\u{85}\u{2028}\u{feff}", "\"\\u0001\\u0085\\u2028\\uFEFF\""),
            ("q\"\\", "\"q\\\"\\\\\""),
            ("a\r\nb", "\"a\\r\\nb\""),
            ("trail \nx", "\"trail \\nx\""),
            ("\n", "\"\\n\""),
            ("x\n", "|\n  x"),
            ("x\n\n", "|+\n  x\n"),
            ("\nx", "|-\n\n  x"),
        ];
        for (s, expected) in table {
            assert_eq!(to_yaml(&json!(s)), format!("{expected}\n"), "{s:?}");
        }
    }

    /// Loads YAML with PyYAML (YAML 1.1 resolution, timestamps off), if it is installed.
    fn pyyaml_load_all(text: &str) -> Option<Value> {
        use std::io::Write;
        use std::process::{Command, Stdio};
        const SCRIPT: &str = r#"
import sys, json, yaml
class L(getattr(yaml, "CSafeLoader", yaml.SafeLoader)): pass
L.yaml_implicit_resolvers = {c: [(t, r) for t, r in rs if t != "tag:yaml.org,2002:timestamp"] for c, rs in yaml.SafeLoader.yaml_implicit_resolvers.items()}
print(json.dumps(list(yaml.load_all(sys.stdin, Loader=L))))
"#;
        let check =
            Command::new("python3").args(["-c", "import yaml"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        if !check.is_ok_and(|s| s.success()) {
            return None;
        }
        let mut child =
            Command::new("python3").args(["-c", SCRIPT]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().ok()?;
        let mut stdin = child.stdin.take()?;
        let input = text.to_owned();
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let output = child.wait_with_output().ok()?;
        let _ = writer.join();
        assert!(output.status.success(), "PyYAML failed on:\n{text}");
        serde_json::from_slice(&output.stdout).ok()
    }

    #[test]
    fn pyyaml_reads_what_we_write() {
        let values = tricky_values();
        let mut stream = String::new();
        for value in &values {
            stream.push_str("---\n");
            stream.push_str(&to_yaml(value));
        }
        let Some(loaded) = pyyaml_load_all(&stream) else {
            println!("note: python3 with PyYAML is not available; skipping the PyYAML cross-check");
            return;
        };
        assert_eq!(loaded, Value::Array(values.clone()));
        // Floats stay floats.
        assert_eq!(loaded.to_string(), Value::Array(values).to_string());
    }

    /// Arbitrary input never panics: mutations of a varied document.
    #[test]
    fn no_panics_on_mutated_input() {
        let seed_text = "\
%YAML 1.1
---
a: &a {x: 1, y: [2, 3]}
b: *a
c:
  <<: *a
  d: |+
    text

  e: >-
    folded
  f: \"quo\\u00e9ted\"
  g: 'single ''q'''
- item
? [k]
: v
... # end
--- !!map
h: !!int 0x1F
";
        let bytes: Vec<char> = seed_text.chars().collect();
        let alphabet: Vec<char> = "-:?[]{},&*!|>'\"%@`#\n \t\r\\.0123456789abxyz<\u{feff}é".chars().collect();
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % 1_000_003).unwrap_or(0)
        };
        for _ in 0..3000 {
            let mut text = bytes.clone();
            for _ in 0..(1 + next() % 6) {
                let pos = next() % (text.len() + 1);
                match next() % 3 {
                    0 if pos < text.len() => {
                        text.remove(pos);
                    }
                    1 if pos < text.len() => text[pos] = alphabet[next() % alphabet.len()],
                    _ => text.insert(pos, alphabet[next() % alphabet.len()]),
                }
            }
            let text: String = text.into_iter().collect();
            if let Ok(docs) = parse_documents(&text) {
                for doc in docs {
                    let again = parse_documents(&to_yaml(&doc.value)).unwrap_or_default();
                    assert_eq!(again.first().map(|d| &d.value), Some(&doc.value), "{text:?}");
                }
            }
        }
    }
}
