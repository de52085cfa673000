// catga/detail/snapshot_sink.hpp — where a snapshot is encoded: a byte sink
// for encodes too large to hold twice in memory.
//
// Not part of the stable API (visible only because `StateCell<S>`, a template,
// encodes the user's state through it). msgpack-c's packer writes through
// `write()`; bytes collect in a fixed buffer and leave through `emit()` when it
// fills. A length that is known only after its body was written (a msgpack
// bin header in front of a nested encode, write_bin32) is left as a gap with
// `reserve()` and filled in later with `patch()`.
//
// Thread-safety: none; one encoder at a time. A sink may be used in a forked
// child process (see src/cluster/snapshot_child.hpp): nothing here locks,
// logs or allocates after construction.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "catga/export.hpp"

namespace catga::detail {

class CATGA_EXPORT SnapshotSink {
 public:
  SnapshotSink() = default;
  virtual ~SnapshotSink() = default;
  SnapshotSink(const SnapshotSink&) = delete;
  SnapshotSink& operator=(const SnapshotSink&) = delete;

  void write(const char* data, std::size_t size) {
    if (size <= kCapacity && used_ <= kCapacity - size) {
      std::memcpy(buffer_.data() + used_, data, size);
      used_ += size;
      return;
    }
    flush();
    if (size >= kCapacity) {
      emit(data, size);
      emitted_ += size;
      return;
    }
    std::memcpy(buffer_.data(), data, size);
    used_ = size;
  }

  // Bytes written so far (emitted or still buffered).
  std::uint64_t position() const { return emitted_ + used_; }

  // Leaves `size` zero bytes to be filled by patch(); returns their position.
  std::uint64_t reserve(std::size_t size) {
    static constexpr char kZeros[16] = {};
    const std::uint64_t at = position();
    while (size > 0) {
      const std::size_t n = size < sizeof kZeros ? size : sizeof kZeros;
      write(kZeros, n);
      size -= n;
    }
    return at;
  }

  // Overwrites bytes written earlier at `position` (e.g. a reserved gap).
  void patch(std::uint64_t position, const char* data, std::size_t size) {
    if (position >= emitted_) {
      std::memcpy(buffer_.data() + (position - emitted_), data, size);
      return;
    }
    const std::size_t before = position + size <= emitted_ ? size : static_cast<std::size_t>(emitted_ - position);
    patch_emitted(position, data, before);
    if (before < size) std::memcpy(buffer_.data(), data + before, size - before);
  }

  // Emits whatever is buffered.
  void flush() {
    if (used_ == 0) return;
    emit(buffer_.data(), used_);
    emitted_ += used_;
    used_ = 0;
  }

 protected:
  // The next `size` bytes of the encoding, in order.
  virtual void emit(const char* data, std::size_t size) = 0;
  // Overwrites `size` already emitted bytes at `position`.
  virtual void patch_emitted(std::uint64_t position, const char* data, std::size_t size) = 0;

 private:
  static constexpr std::size_t kCapacity = 64 * 1024;
  std::array<char, kCapacity> buffer_;
  std::size_t used_ = 0;
  std::uint64_t emitted_ = 0;
};

// A sink into a string (snapshots encoded in the process itself, tests).
class CATGA_EXPORT StringSnapshotSink final : public SnapshotSink {
 public:
  explicit StringSnapshotSink(std::string& out) : out_(out) {}
  ~StringSnapshotSink() override { flush(); }

 protected:
  void emit(const char* data, std::size_t size) override { out_.append(data, size); }
  void patch_emitted(std::uint64_t position, const char* data, std::size_t size) override {
    std::memcpy(out_.data() + position, data, size);
  }

 private:
  std::string& out_;
};

// Writes a msgpack bin 32 whose body `encode_body()` writes into `sink`: the
// 5-byte header is reserved first and filled in once the body's length is
// known, so the body is never held twice. Throws std::length_error if the
// body exceeds 4 GiB (msgpack's limit).
template <class F>
void write_bin32(SnapshotSink& sink, F&& encode_body) {
  const std::uint64_t at = sink.reserve(5);
  encode_body();
  const std::uint64_t size = sink.position() - at - 5;
  if (size > UINT32_MAX) throw std::length_error("snapshot: a part larger than 4 GiB");
  const char header[5] = {static_cast<char>(0xc6), static_cast<char>(size >> 24), static_cast<char>(size >> 16),
                          static_cast<char>(size >> 8), static_cast<char>(size)};
  sink.patch(at, header, sizeof header);
}

}  // namespace catga::detail
