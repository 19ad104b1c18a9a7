// Streaming safetensors writer: header first, then data in declared order.
#include "tools/safetensors_writer.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <set>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace tessera {
namespace {

constexpr int64_t kAlignment = 8;

int64_t AlignUp(int64_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

}  // namespace

int64_t SafetensorsEntry::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::StatusOr<std::unique_ptr<SafetensorsWriter>> SafetensorsWriter::Create(
    const std::string& path, std::vector<SafetensorsEntry> entries,
    const std::vector<std::pair<std::string, std::string>>& metadata) {
  std::unique_ptr<SafetensorsWriter> w(new SafetensorsWriter(path, std::move(entries)));
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    header["__metadata__"] = meta;
  }
  std::set<std::string> names;
  int64_t offset = 0;
  for (const SafetensorsEntry& e : w->entries_) {
    if (e.name.empty() || e.name == "__metadata__" || !names.insert(e.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("tensor name '", e.name, "' is empty, reserved or repeated"));
    }
    for (int64_t d : e.shape) {
      if (d < 0) return absl::InvalidArgumentError(absl::StrCat("tensor '", e.name, "' has a negative dim"));
    }
    offset = AlignUp(offset);
    w->begins_.push_back(offset);
    header[e.name] = {{"dtype", std::string(DTypeName(e.dtype))},
                      {"shape", e.shape},
                      {"data_offsets", {offset, offset + e.bytes()}}};
    offset += e.bytes();
    w->data_total_ += e.bytes();
  }
  std::string text = header.dump();
  text.append(static_cast<size_t>(AlignUp(8 + static_cast<int64_t>(text.size())) - 8) - text.size(), ' ');

  const std::string tmp = path + ".tmp";
  w->file_ = std::fopen(tmp.c_str(), "wb");
  if (w->file_ == nullptr) return absl::ErrnoToStatus(errno, absl::StrCat("cannot create ", tmp));
  const uint64_t header_len = text.size();  // little-endian on every platform we build for
  if (absl::Status s = w->WriteRaw(&header_len, sizeof(header_len)); !s.ok()) return s;
  if (absl::Status s = w->WriteRaw(text.data(), text.size()); !s.ok()) return s;
  if (absl::Status s = w->PadCompletedTensors(); !s.ok()) return s;  // leading empty tensors
  return w;
}

SafetensorsWriter::~SafetensorsWriter() {
  if (file_ != nullptr) std::fclose(file_);
  if (!finished_) std::remove((path_ + ".tmp").c_str());
}

absl::Status SafetensorsWriter::WriteRaw(const void* data, size_t size) {
  if (size > 0 && std::fwrite(data, 1, size, file_) != size) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", path_, ".tmp"));
  }
  return absl::OkStatus();
}

// Moves past every tensor that is complete and zero-pads to the next one's start.
absl::Status SafetensorsWriter::PadCompletedTensors() {
  while (current_ < entries_.size() && offset_ == begins_[current_] + entries_[current_].bytes()) {
    ++current_;
    if (current_ < entries_.size() && offset_ < begins_[current_]) {
      static constexpr uint8_t kZeros[kAlignment] = {};
      const int64_t pad = begins_[current_] - offset_;
      if (absl::Status s = WriteRaw(kZeros, static_cast<size_t>(pad)); !s.ok()) return s;
      offset_ += pad;
    }
  }
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::Append(absl::Span<const uint8_t> bytes) {
  while (!bytes.empty()) {
    if (current_ >= entries_.size()) {
      return absl::FailedPreconditionError(absl::StrCat(path_, ": ", bytes.size(),
                                                        " bytes appended after the last declared tensor"));
    }
    const int64_t left_in_tensor = begins_[current_] + entries_[current_].bytes() - offset_;
    const size_t n = static_cast<size_t>(std::min<int64_t>(left_in_tensor, static_cast<int64_t>(bytes.size())));
    if (absl::Status s = WriteRaw(bytes.data(), n); !s.ok()) return s;
    offset_ += static_cast<int64_t>(n);
    data_written_ += static_cast<int64_t>(n);
    bytes.remove_prefix(n);
    if (absl::Status s = PadCompletedTensors(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::Finish() {
  if (finished_) return absl::FailedPreconditionError(absl::StrCat(path_, ": Finish called twice"));
  if (data_written_ != data_total_) {
    return absl::FailedPreconditionError(absl::StrCat(path_, ": ", data_written_, " of ", data_total_,
                                                      " tensor bytes written"));
  }
  const bool flushed = std::fflush(file_) == 0;
  const int close_result = std::fclose(file_);
  file_ = nullptr;
  if (!flushed || close_result != 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", path_, ".tmp"));
  if (std::rename((path_ + ".tmp").c_str(), path_.c_str()) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot rename ", path_, ".tmp to ", path_));
  }
  finished_ = true;
  return absl::OkStatus();
}

}  // namespace tessera
