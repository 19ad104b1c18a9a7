// Regenerates tests/data/tokenizers/*/golden_reference.json (and the crafted
// tokenizers' tokenizer.json) from Hugging Face tokenizers itself, through its
// official Node binding (npm package `tokenizers`, the Rust core). Not part of
// the build or CI: the outputs are committed. To regenerate:
//   mkdir /tmp/hf && cd /tmp/hf && npm install tokenizers@0.23.2
//   NODE_PATH=/tmp/hf/node_modules node tests/tokenizer/make_reference_golden.js
// The shared fixtures' golden_shared.json stay the primary goldens; these
// add breadth: random mixed-script text, Unicode whitespace, contractions in
// odd cases, added-token flags, Split behaviours, unk / byte fallback, and
// decoding of arbitrary id lists (invalid UTF-8 -> U+FFFD).
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('tokenizers');

const dataDir = path.join(__dirname, '..', 'data', 'tokenizers');

// Deterministic PRNG (mulberry32).
function rng(seed) {
  return () => {
    seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const POOL = [
  'a', 'e', 'the', ' ', ' ', ' ', 'state', 'space', 'model', 'Hello', 'WORLD', 'x', 'ing', 'tool',
  '0', '7', '12', '345', '3.14', '٣', '߂', '²', 'Ⅻ', '½',
  "'s", "'S", "'t", "'re", "'VE", "'m", "'ll", "'LL", "'d", "'ſ", "'K", '’s', "'", "''",
  '\t', '\n', '\r\n', '\n\n', '  ', '   ', '\u0085', '\u00a0', '\u1680', '\u180e', '\u2003', '\u200b',
  '\u2028', '\u2029', '\u202f', '\u205f', '\u3000', '\ufeff', '\u000b', '\u000c', '\u001c', '\u001f',
  '数字', '状态空间', '的', '。', '，', 'こんにちは', '한국어', 'Привет', 'Ελληνικά', 'עברית', 'العربية', 'हिन्दी',
  'é', 'e\u0301', 'ñ', 'Å', 'ß', 'ſ', 'K', 'İ', 'ı', 'ǅ', '\u0300', '\u200d', '\u0000', '\u007f',
  '🙂', '🚀', '👩‍💻', '🇫🇷', '👍🏽', '𝔘', '𐍈',
  '(', ')', '{', '}', '[', ']', ';', '.', ',', '!', '?', '-', '_', '__', '==', '=>', '//', '#', '$', '%',
  '@', '\\', '"', '`', '~', '^', '&', '*', '+', '<', '>', '|', '/', ':',
  '<|bos|>', '<|eos|>', '<|pad|>', '<|bos', 'bos|>', '<mask>', '[SEP]', ' tool', '<|bos|>x', 'xyz',
];

function randomText(next, maxPieces) {
  const n = Math.floor(next() * maxPieces);
  let s = '';
  for (let i = 0; i < n; i++) s += POOL[Math.floor(next() * POOL.length)];
  return s;
}

const HANDWRITTEN = [
  '', ' ', '  ', '\n', ' \n ', 'a', ' a', 'a ', 'Hello world', ' Hello  world ', 'Hello\u00a0world',
  "He's here; they'RE gone. I'D've", "'s'S'ſ'K", 'x\u0085y', 'x\u180ey', 'x \u180e y', 'tab\tend\t',
  'line\r\nbreak\r\n\r\n', '   leading', 'trailing   ', 'mixed \t\n whitespace \u3000 end',
  '12345678901234567890', '3.14159 2.71828', '1,000,000', '٣٤٥ ߂߃', '²³ ½',
  'def f(x):\n    return x**2  # square\n', 'for (int i = 0; i < n; ++i) { sum += a[i]; }',
  '<|bos|>', '<|bos|><|eos|>', 'a<|bos|>b', ' <|eos|> ', '<|bos|x', '<|bos|>x', '<<|bos|>>',
  '<mask>', 'a <mask> b', 'a<mask>b', 'a <mask>', ' <mask>\t[SEP]  x', '[SEP][SEP]', 'toolbox tool tools',
  ' tool tool', 'x tool', '数字数字', '数字 12345 and 3.14159', 'e\u0301e\u0301', '👩‍💻🇫🇷👍🏽', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢',
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  '\u0000\u0001\u007f', 'xxxx', 'x', 'axxb', '!!!???...', 'state-space models (SSMs) are dual to attention',
];

async function goldenFor(tok, vocabSize, seed, randomCount) {
  const next = rng(seed);
  const texts = HANDWRITTEN.slice();
  for (let i = 0; i < randomCount; i++) texts.push(randomText(next, i < randomCount / 2 ? 8 : 40));
  const encode = [];
  for (const text of texts) {
    const withSpecial = (await tok.encode(text, null, { addSpecialTokens: true })).getIds();
    const noSpecial = (await tok.encode(text, null, { addSpecialTokens: false })).getIds();
    encode.push({
      text,
      ids: withSpecial,
      ids_no_special: noSpecial,
      decoded: await tok.decode(withSpecial, true),
      decoded_with_special: await tok.decode(withSpecial, false),
    });
  }
  const decode = [];
  for (let i = 0; i < 120; i++) {
    const n = Math.floor(next() * 12);
    const ids = [];
    for (let j = 0; j < n; j++) ids.push(Math.floor(next() * vocabSize));
    decode.push({ ids, skip_special: await tok.decode(ids, true), keep_special: await tok.decode(ids, false) });
  }
  return { encode, decode };
}

function crafted() {
  const gpt2 = JSON.parse(fs.readFileSync(path.join(dataDir, 'bpe512-gpt2split', 'tokenizer.json')));
  const llama = JSON.parse(fs.readFileSync(path.join(dataDir, 'bpe1000-llama3split', 'tokenizer.json')));
  const out = {};

  // Added-token flags, add_prefix_space and a BOS+EOS template in a Sequence.
  const added = JSON.parse(JSON.stringify(gpt2));
  const ingId = added.model.vocab['ing'];
  added.added_tokens.push(
    { id: 512, content: '<mask>', single_word: true, lstrip: true, rstrip: true, normalized: false, special: false },
    { id: 513, content: '[SEP]', single_word: false, lstrip: false, rstrip: true, normalized: false, special: true },
    { id: 514, content: ' tool', single_word: false, lstrip: false, rstrip: false, normalized: true, special: false },
    { id: 515, content: '<|bos|>x', single_word: false, lstrip: false, rstrip: false, normalized: true, special: false },
    { id: ingId, content: 'ing', single_word: false, lstrip: false, rstrip: false, normalized: false, special: false },
    { id: 516, content: '数字', single_word: false, lstrip: true, rstrip: false, normalized: false, special: true },
  );
  added.pre_tokenizer = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };
  added.post_processor = {
    type: 'Sequence',
    processors: [
      { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
      {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '<|bos|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
                 { SpecialToken: { id: '<|eos|>', type_id: 0 } }],
        pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
        special_tokens: {
          '<|bos|>': { id: '<|bos|>', ids: [1], tokens: ['<|bos|>'] },
          '<|eos|>': { id: '<|eos|>', ids: [2], tokens: ['<|eos|>'] },
        },
      },
    ],
  };
  out['bpe512-addedtokens'] = added;

  // Every Split behaviour, invert, literal patterns, empty matches, \w.
  const split = JSON.parse(JSON.stringify(llama));
  split.pre_tokenizer = {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { String: '<|' }, behavior: 'MergedWithNext', invert: false },
      { type: 'Split', pattern: { Regex: '\\p{N}' }, behavior: 'MergedWithPrevious', invert: false },
      { type: 'Split', pattern: { Regex: '\\s+' }, behavior: 'Contiguous', invert: false },
      { type: 'Split', pattern: { Regex: 'x*' }, behavior: 'Isolated', invert: false },
      { type: 'Split', pattern: { Regex: '[\\w]+|\\s' }, behavior: 'Isolated', invert: true },
      { type: 'Split', pattern: { Regex: '\\W{3,}' }, behavior: 'Removed', invert: false },
      { type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithPrevious', invert: true },
      { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    ],
  };
  out['bpe1000-splitbehaviors'] = split;

  // Character-level BPE (no ByteLevel pre-tokenizer): unk, fuse_unk,
  // byte_fallback for a few bytes, ignore_merges.
  const vocab = { '<unk>': 0, '<|bos|>': 1, '<0xC3>': 2, '<0xA9>': 3, '<0x21>': 4 };
  let nextId = 5;
  for (const c of ' abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,') vocab[c] = nextId++;
  const merges = [['t', 'h'], ['th', 'e'], [' ', 'the'], ['a', 'n'], ['an', 'd'], ['i', 'n'], ['in', 'g'], ['e', 'r']];
  for (const [a, b] of merges) if (!(a + b in vocab)) vocab[a + b] = nextId++;
  vocab['wholeword'] = nextId++;
  const chars = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [{ id: 1, content: '<|bos|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
                   { id: 0, content: '<unk>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'Split', pattern: { Regex: ' ?\\p{L}+| ?\\p{N}+|\\s+|[^\\s\\p{L}\\p{N}]+' }, behavior: 'Isolated', invert: false },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<|bos|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<|bos|>': { id: '<|bos|>', ids: [1], tokens: ['<|bos|>'] } },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null,
             fuse_unk: true, byte_fallback: true, ignore_merges: true, vocab, merges },
  };
  out['chars-unk-fused'] = chars;
  const unfused = JSON.parse(JSON.stringify(chars));
  unfused.model.fuse_unk = false;
  unfused.model.byte_fallback = false;
  unfused.model.ignore_merges = false;
  // The "a b" spelling (HF wants one spelling per list; ' ' + 'the' has none).
  unfused.model.merges = merges.filter(([a, b]) => !(a + b).includes(' ')).map(([a, b]) => a + ' ' + b);
  out['chars-unk-unfused'] = unfused;
  return out;
}

(async () => {
  const tokenizers = { 'bpe512-gpt2split': null, 'bpe1000-llama3split': null };
  for (const [name, json] of Object.entries(crafted())) {
    fs.mkdirSync(path.join(dataDir, name), { recursive: true });
    fs.writeFileSync(path.join(dataDir, name, 'tokenizer.json'), JSON.stringify(json, null, 1) + '\n');
    tokenizers[name] = null;
  }
  let seed = 1;
  for (const name of Object.keys(tokenizers)) {
    const file = path.join(dataDir, name, 'tokenizer.json');
    const tok = Tokenizer.fromFile(file);
    const golden = await goldenFor(tok, tok.getVocabSize(true), seed++, 300);
    fs.writeFileSync(path.join(dataDir, name, 'golden_reference.json'), JSON.stringify(golden) + '\n');
    console.log(name, golden.encode.length, 'encode cases,', golden.decode.length, 'decode cases');
  }
})();
