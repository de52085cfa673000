// src/cluster/entry_format.hpp — the bytes of one Raft log entry written by
// Catga: a batch of opaque records packed by the leader (group commit).
//
// Layout (little-endian), version 1:
//   0  "CATG"            magic, 4 bytes
//   4  version  u8       = 1
//   5  kind     u8       = 1 (record batch)
//   6  reserved u16      = 0
//   8  term     u64      leader's term when it packed the entry (= the entry's
//                        Raft term; libraft's FSM apply does not pass it)
//  16  leader_time_ns i64  unix ns stamped by the leader (its wall clock; the
//                        session table does not trust it blindly)
//  24  count    u32      number of records (≤ kMaxRecordsPerEntry when written)
//  28  reserved u32      = 0
//  32  count × { length u32, bytes }
//      zero padding up to a multiple of 8 (libraft requires it)
//
// Pure C++, no libraft. Decoding validates everything and never reads out of
// bounds. Thread-safety: functions on values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "catga/result.hpp"

namespace catga::internal {

inline constexpr char kEntryMagic[4] = {'C', 'A', 'T', 'G'};
inline constexpr std::uint8_t kEntryFormatVersion = 1;
inline constexpr std::uint8_t kEntryKindRecordBatch = 1;
inline constexpr std::size_t kEntryHeaderBytes = 32;
inline constexpr std::size_t kRecordOverheadBytes = 4;
// The most records a leader packs into one entry. Decoding accepts more
// (entries written by older builds); the session table relies on it: a
// record's position stays below 2^16, so a session id derived from
// (index, position) is unique.
inline constexpr std::size_t kMaxRecordsPerEntry = 65'536;

struct EntryHeader {
  std::uint64_t term = 0;
  std::int64_t leader_time_ns = 0;
};

struct DecodedBatch {
  EntryHeader header;
  std::vector<std::string_view> records;  // views into the decoded buffer
};

// Rounds up to a multiple of 8.
constexpr std::size_t pad8(std::size_t n) { return (n + 7) & ~std::size_t{7}; }

// Bytes of an entry whose records' lengths sum to `record_bytes`, `count` of them.
constexpr std::size_t record_batch_size(std::size_t count, std::size_t record_bytes) {
  return pad8(kEntryHeaderBytes + count * kRecordOverheadBytes + record_bytes);
}

// Incremental writer into a caller-provided buffer of exactly
// record_batch_size(count, record_bytes) bytes. Precondition: the caller adds
// exactly `count` records totalling `record_bytes`, then calls finish().
class RecordBatchWriter {
 public:
  RecordBatchWriter(char* out, std::size_t size, const EntryHeader& header, std::uint32_t count);
  void add(std::string_view record);
  // Zero-fills the padding. Returns the bytes written (== size).
  std::size_t finish();

 private:
  char* out_;
  std::size_t size_;
  std::size_t pos_;
};

// Convenience: a whole entry as a string.
std::string encode_record_batch(const EntryHeader& header, std::span<const std::string_view> records);

// Decodes an entry. Errors:
//   Code::unimplemented  magic is "CATG" but version or kind is unknown (written
//                        by a newer build);
//   Code::data_loss      anything else unreadable (not Catga's magic, truncated,
//                        lengths/count inconsistent, non-zero padding).
Result<DecodedBatch> decode_record_batch(std::string_view entry);

// ---- snapshot envelope ---------------------------------------------------
// libraft 0.22 checksums a snapshot's metadata but not its data, so Catga
// wraps the state machine's bytes:
//   0  "CATS" magic | 4 version u8 = 1 | 5 reserved[3] | 8 length u64 |
//  16  crc32 (IEEE) of the data u32 | 20 reserved u32 | 24 data
inline constexpr std::size_t kSnapshotHeaderBytes = 24;

// CRC-32 (IEEE 802.3, as zlib).
std::uint32_t crc32(std::string_view data);
// Writes the 24-byte header for `data` into out.
void write_snapshot_header(char* out, std::string_view data);
// The state machine's bytes inside a snapshot, verified. Code::data_loss when
// the magic, length or checksum is wrong; Code::unimplemented for a newer version.
Result<std::string_view> unwrap_snapshot(std::string_view snapshot);

}  // namespace catga::internal
