// How the layer loop names memory without knowing whose it is: a Tensor is a
// view of a 2-D array (rows, cols) of one element type with a row stride, in
// the memory of whichever backend made it (host for the CPU, device for
// CUDA); a Buffer owns such memory and frees it the way its backend says
// (stream-ordered on a GPU). Views never own; a Buffer outlives its views.
#pragma once

#include <cassert>
#include <cstdint>
#include <functional>
#include <utility>

#include "kernels/element_type.h"

namespace tessera {

struct Tensor {
  void* data = nullptr;
  ElementType type = ElementType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t stride = 0;  // elements between the starts of two rows, >= cols

  bool empty() const { return data == nullptr; }
  bool packed() const { return stride == cols; }
  int64_t element_bytes() const { return ElementBytes(type); }
  // Bytes of the rows as laid out (the last row counts its cols only).
  int64_t span_bytes() const { return rows == 0 ? 0 : ((rows - 1) * stride + cols) * element_bytes(); }

  // The data as fp32 (the tensor must be fp32, or empty: then null).
  float* f32() const {
    assert(data == nullptr || type == ElementType::kF32);
    return static_cast<float*>(data);
  }
  // Rows [begin, begin + count), all columns.
  Tensor Rows(int64_t begin, int64_t count) const {
    assert(begin >= 0 && count >= 0 && begin + count <= rows);
    return {Offset(begin * stride), type, count, cols, stride};
  }
  // Columns [begin, begin + count) of every row (same stride).
  Tensor Cols(int64_t begin, int64_t count) const {
    assert(begin >= 0 && count >= 0 && begin + count <= cols);
    return {Offset(begin), type, rows, count, stride};
  }
  // The same elements seen as (rows', cols') packed; the tensor must be packed.
  Tensor Reshaped(int64_t new_rows, int64_t new_cols) const {
    assert(packed() && new_rows * new_cols == rows * cols);
    return {data, type, new_rows, new_cols, new_cols};
  }

 private:
  void* Offset(int64_t elements) const {
    return data == nullptr ? nullptr : static_cast<char*>(data) + elements * element_bytes();
  }
};

// Owns memory a backend allocated, with the function that frees it. Move-only.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Tensor view, std::function<void(void*)> free) : view_(view), free_(std::move(free)) {}
  Buffer(Buffer&& other) noexcept : view_(std::exchange(other.view_, Tensor{})), free_(std::move(other.free_)) {}
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      Release();
      view_ = std::exchange(other.view_, Tensor{});
      free_ = std::move(other.free_);
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { Release(); }

  const Tensor& view() const { return view_; }
  float* f32() const { return view_.f32(); }
  int64_t bytes() const { return view_.span_bytes(); }

 private:
  void Release() {
    if (view_.data != nullptr && free_) free_(view_.data);
    view_ = Tensor{};
  }

  Tensor view_;
  std::function<void(void*)> free_;
};

}  // namespace tessera
