// Tokenizer encode throughput on 1 MB of deterministic mixed text (English
// prose, code, digits, CJK, emoji, accented Latin). For each tokenizer.json
// given (default: the test fixtures), after one warm-up: cold-cache encodes
// (a fresh Tokenizer per repetition, so every word goes through the BPE merge
// loop once) and warm-cache encodes (same Tokenizer again); prints the median
// seconds and MB/s of each. Single thread.
//   tokenizer_bench [--mb N] [--reps N] [--write-text FILE] [tokenizer.json ...]
// --write-text saves the generated text (to compare ids and speed with other
// tokenizer implementations on exactly the same input).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "coordinator/tokenizer/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

std::string MixedText(size_t bytes) {
  std::mt19937 rng(20240601);
  const auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  // A Zipf-like English vocabulary: 3000 made-up words of 2-4 syllables.
  const char* const syllables[] = {"the", "sta", "te",  "spa", "ce", "mo", "del", "ran", "ing", "tion",
                                   "con", "ver", "pro", "ex",  "al", "er", "in",  "ou",  "ly",  "ment",
                                   "ba",  "ki",  "lo",  "ne",  "ti", "un", "re",  "st",  "or",  "an"};
  std::vector<std::string> words;
  for (int i = 0; i < 3000; ++i) {
    std::string w;
    for (size_t s = 0, n = 2 + pick(3); s < n; ++s) w += syllables[pick(30)];
    if (pick(10) == 0) w[0] = static_cast<char>(w[0] - 'a' + 'A');
    words.push_back(w);
  }
  const char* const accented[] = {"café", "naïve", "Ångström", "façade", "jalapeño", "Müller", "señor", "œuvre"};
  const char* const code[] = {"for (int i = 0; i < n; ++i) { sum += a[i]; }\n",
                              "def forward(self, x):\n    return self.proj(x) * 0.5\n",
                              "if (status.ok()) return value;  // fast path\n",
                              "    {\"id\": 42, \"name\": \"tessera\", \"tags\": [\"a\", \"b\"]},\n"};
  const char* const emoji[] = {"🙂", "🚀", "👩‍💻", "🇫🇷", "👍🏽", "✨"};
  std::string text;
  text.reserve(bytes + 256);
  std::geometric_distribution<int> rank(0.004);
  while (text.size() < bytes) {
    const size_t kind = pick(100);
    if (kind < 60) {  // a prose sentence
      for (size_t w = 0, n = 5 + pick(15); w < n; ++w) {
        text += words[std::min<size_t>(rank(rng), words.size() - 1)];
        text += pick(12) == 0 ? ", " : " ";
      }
      text += ". ";
    } else if (kind < 72) {
      text += code[pick(4)];
    } else if (kind < 80) {  // numbers
      text += std::to_string(rng() % 1000000) + "." + std::to_string(rng() % 100) + " ";
    } else if (kind < 92) {  // CJK: random common ideographs
      for (size_t c = 0, n = 4 + pick(20); c < n; ++c) {
        const uint32_t cp = 0x4E00 + static_cast<uint32_t>(pick(3000));
        text += static_cast<char>(0xE0 | (cp >> 12));
        text += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        text += static_cast<char>(0x80 | (cp & 0x3F));
      }
      text += "。";
    } else if (kind < 96) {
      text += emoji[pick(6)];
      text += " ";
    } else {
      text += accented[pick(8)];
      text += " ";
    }
    if (pick(20) == 0) text += "\n\n";
  }
  // Cut at a character boundary.
  size_t end = bytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  text.resize(end);
  return text;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  double mb = 1.0;
  int reps = 7;
  std::vector<std::string> paths;
  std::string write_text;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--mb" && i + 1 < argc) {
      mb = std::atof(argv[++i]);
    } else if (arg == "--write-text" && i + 1 < argc) {
      write_text = argv[++i];
    } else if (arg == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else {
      paths.push_back(arg);
    }
  }
#ifdef TESSERA_TEST_DATA_DIR
  if (paths.empty()) {
    for (const char* name : {"bpe512-gpt2split", "bpe1000-llama3split"}) {
      paths.push_back(std::string(TESSERA_TEST_DATA_DIR) + "/tokenizers/" + name + "/tokenizer.json");
    }
  }
#endif
  if (paths.empty()) {
    std::fprintf(stderr, "usage: tokenizer_bench [--mb N] [--reps N] tokenizer.json...\n");
    return 2;
  }
  const std::string text = MixedText(static_cast<size_t>(mb * 1024 * 1024));
  const double megabytes = text.size() / (1024.0 * 1024.0);
  if (!write_text.empty()) std::ofstream(write_text, std::ios::binary) << text;
  std::printf("text: %zu bytes (%.2f MiB) of mixed prose/code/digits/CJK/emoji/accents; %d reps, median\n", text.size(),
              megabytes, reps);
  for (const std::string& path : paths) {
    std::vector<double> load_s, cold_s, warm_s;
    size_t tokens = 0;
    for (int r = 0; r <= reps; ++r) {  // r == 0 is the warm-up
      const auto t0 = Clock::now();
      auto tokenizer = tessera::Tokenizer::FromFile(path);
      const auto t1 = Clock::now();
      if (!tokenizer.ok()) {
        std::fprintf(stderr, "%s\n", tokenizer.status().ToString().c_str());
        return 1;
      }
      auto cold = (*tokenizer)->Encode(text, false);
      const auto t2 = Clock::now();
      auto warm = (*tokenizer)->Encode(text, false);
      const auto t3 = Clock::now();
      if (!cold.ok() || !warm.ok() || *cold != *warm) {
        std::fprintf(stderr, "encode failed or cold != warm\n");
        return 1;
      }
      tokens = cold->size();
      if (r == 0) continue;
      load_s.push_back(std::chrono::duration<double>(t1 - t0).count());
      cold_s.push_back(std::chrono::duration<double>(t2 - t1).count());
      warm_s.push_back(std::chrono::duration<double>(t3 - t2).count());
    }
    const double cold = Median(cold_s), warm = Median(warm_s);
    std::printf("%s\n  load %.4f s | %zu tokens (%.2f bytes/token)\n", path.c_str(), Median(load_s), tokens,
                static_cast<double>(text.size()) / tokens);
    std::printf("  cold cache (fresh Tokenizer): %.4f s  %.2f MB/s  %.2f Mtok/s\n", cold, megabytes / cold,
                tokens / cold / 1e6);
    std::printf("  warm cache (same Tokenizer):  %.4f s  %.2f MB/s  %.2f Mtok/s\n", warm, megabytes / warm,
                tokens / warm / 1e6);
  }
  return 0;
}
