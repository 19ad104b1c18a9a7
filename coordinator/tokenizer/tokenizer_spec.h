// What a tokenizer.json says, as plain structs: the only place that reads
// JSON. Everything Tessera cannot reproduce exactly is refused here with an
// INVALID_ARGUMENT that names the JSON path (e.g. "normalizer.normalizers[2]
// .type 'Precompiled' is not supported"), so a loaded tokenizer never
// silently encodes differently from Hugging Face tokenizers. Supported:
// model BPE (vocab; merges as "a b" or ["a", "b"]; unk_token, fuse_unk,
// byte_fallback, ignore_merges); normalizer null / NFC / NFD / NFKC / NFKD /
// Lowercase / Strip / Prepend / Replace / Sequence of them; pre_tokenizer
// null / ByteLevel / Split / Metaspace / Sequence of them (ByteLevel last);
// added_tokens with all flags; post_processor TemplateProcessing / ByteLevel
// / Sequence of them; decoder ByteLevel, or Metaspace / ByteFallback / Fuse
// / Strip / Replace / Sequence of them (decoder.h says which orders). Unlike
// HF, one merges list may mix both spellings.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/tokenizer/added_tokens.h"
#include "coordinator/tokenizer/bpe_model.h"
#include "coordinator/tokenizer/decoder.h"
#include "coordinator/tokenizer/normalizer.h"
#include "coordinator/tokenizer/pre_tokenizer.h"

namespace tessera {

struct TokenizerSpec {
  BpeConfig bpe;
  std::vector<AddedToken> added_tokens;         // ids resolved, empty contents dropped
  std::vector<NormalizerStep> normalizer;       // flattened Sequence
  std::vector<PreTokenizerStep> pre_tokenizer;  // flattened Sequence
  std::vector<DecoderStep> decoder;             // flattened Sequence
  // Post-processing of a single sequence with add_special_tokens=true:
  // prefix ids + encoded text + suffix ids (TemplateProcessing "single").
  std::vector<int32_t> special_prefix;
  std::vector<int32_t> special_suffix;
};

// Parses and validates a tokenizer.json document. Never throws.
absl::StatusOr<TokenizerSpec> ParseTokenizerSpec(std::string_view json);

}  // namespace tessera
