#include "cluster/entry_format.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace catga::internal {
namespace {

TEST(EntryFormat, RoundTripsRecordsAndHeader) {
  std::vector<std::string_view> records = {"a", "", "hello world", std::string_view("\0\x01\x02", 3)};
  const std::string entry = encode_record_batch(EntryHeader{7, 1234567890123}, records);
  ASSERT_EQ(entry.size() % 8, 0u);
  EXPECT_EQ(entry.substr(0, 4), "CATG");
  auto decoded = decode_record_batch(entry);
  ASSERT_TRUE(decoded.has_value()) << decoded.error().message();
  EXPECT_EQ(decoded->header.term, 7u);
  EXPECT_EQ(decoded->header.leader_time_ns, 1234567890123);
  ASSERT_EQ(decoded->records.size(), records.size());
  for (std::size_t i = 0; i < records.size(); ++i) EXPECT_EQ(decoded->records[i], records[i]);
}

TEST(EntryFormat, EmptyBatchIsHeaderOnly) {
  const std::string entry = encode_record_batch(EntryHeader{1, 2}, {});
  EXPECT_EQ(entry.size(), kEntryHeaderBytes);
  auto decoded = decode_record_batch(entry);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_TRUE(decoded->records.empty());
}

TEST(EntryFormat, PadsToMultipleOfEightWithZeros) {
  for (std::size_t len = 0; len < 20; ++len) {
    std::string rec(len, 'x');
    std::vector<std::string_view> records = {rec};
    const std::string entry = encode_record_batch(EntryHeader{1, 1}, records);
    EXPECT_EQ(entry.size(), record_batch_size(1, len));
    EXPECT_EQ(entry.size() % 8, 0u) << len;
    for (std::size_t i = kEntryHeaderBytes + 4 + len; i < entry.size(); ++i) EXPECT_EQ(entry[i], '\0');
    EXPECT_TRUE(decode_record_batch(entry).has_value());
  }
}

TEST(EntryFormat, IsLittleEndian) {
  std::vector<std::string_view> records = {"abc"};
  const std::string e = encode_record_batch(EntryHeader{0x0102030405060708ull, 0}, records);
  EXPECT_EQ(static_cast<unsigned char>(e[8]), 0x08);
  EXPECT_EQ(static_cast<unsigned char>(e[15]), 0x01);
  EXPECT_EQ(static_cast<unsigned char>(e[24]), 1);  // count
  EXPECT_EQ(static_cast<unsigned char>(e[32]), 3);  // first record length
}

TEST(EntryFormat, RejectsGarbage) {
  EXPECT_EQ(decode_record_batch("").error().code(), Code::data_loss);
  EXPECT_EQ(decode_record_batch("garbage!").error().code(), Code::data_loss);
  EXPECT_EQ(decode_record_batch(std::string(64, '\xff')).error().code(), Code::data_loss);
  EXPECT_EQ(decode_record_batch(std::string(64, '\0')).error().code(), Code::data_loss);
}

TEST(EntryFormat, RejectsEveryTruncation) {
  std::vector<std::string_view> records = {"first record", "second", "3"};
  const std::string entry = encode_record_batch(EntryHeader{3, 4}, records);
  for (std::size_t n = 0; n < entry.size(); ++n) {
    auto r = decode_record_batch(std::string_view(entry).substr(0, n));
    EXPECT_FALSE(r.has_value()) << "prefix of " << n << " bytes decoded";
  }
}

TEST(EntryFormat, RejectsUnknownVersionAndKind) {
  std::vector<std::string_view> records = {"x"};
  std::string entry = encode_record_batch(EntryHeader{1, 1}, records);
  std::string v2 = entry;
  v2[4] = 2;
  auto r = decode_record_batch(v2);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::unimplemented);
  EXPECT_NE(r.error().message().find("version 2"), std::string::npos);
  std::string k9 = entry;
  k9[5] = 9;
  EXPECT_EQ(decode_record_batch(k9).error().code(), Code::unimplemented);
}

TEST(EntryFormat, RejectsInconsistentLengthsAndCounts) {
  std::vector<std::string_view> records = {"abcd", "efgh"};
  const std::string entry = encode_record_batch(EntryHeader{1, 1}, records);
  std::string big_count = entry;
  big_count[24] = 3;
  EXPECT_EQ(decode_record_batch(big_count).error().code(), Code::data_loss);
  std::string huge_count = entry;
  huge_count[27] = '\x7f';
  EXPECT_EQ(decode_record_batch(huge_count).error().code(), Code::data_loss);
  std::string small_count = entry;
  small_count[24] = 1;
  EXPECT_EQ(decode_record_batch(small_count).error().code(), Code::data_loss);
  std::string huge_len = entry;
  huge_len[35] = '\x7f';
  EXPECT_EQ(decode_record_batch(huge_len).error().code(), Code::data_loss);
  std::string extra = entry + std::string(8, '\0');
  EXPECT_EQ(decode_record_batch(extra).error().code(), Code::data_loss);
  std::string dirty_pad = encode_record_batch(EntryHeader{1, 1}, std::vector<std::string_view>{"abc"});
  dirty_pad.back() = 'x';
  EXPECT_EQ(decode_record_batch(dirty_pad).error().code(), Code::data_loss);
}

TEST(EntryFormat, HandlesLargeRecords) {
  std::string big(1 << 20, 'z');
  std::vector<std::string_view> records = {big, "tail"};
  const std::string entry = encode_record_batch(EntryHeader{1, 1}, records);
  auto decoded = decode_record_batch(entry);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->records[0].size(), big.size());
  EXPECT_EQ(decoded->records[1], "tail");
}

TEST(EntryFormat, WriterMatchesConvenienceEncoder) {
  std::vector<std::string_view> records = {"one", "two", "three"};
  const std::size_t size = record_batch_size(3, 11);
  std::string buf(size, '\x55');
  RecordBatchWriter w(buf.data(), buf.size(), EntryHeader{9, 10}, 3);
  for (auto r : records) w.add(r);
  EXPECT_EQ(w.finish(), size);
  EXPECT_EQ(buf, encode_record_batch(EntryHeader{9, 10}, records));
}

TEST(SnapshotEnvelope, Crc32MatchesTheStandardCheckValue) {
  EXPECT_EQ(crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(crc32(""), 0u);
  EXPECT_EQ(crc32("The quick brown fox jumps over the lazy dog"), 0x414FA339u);
}

// The table-driven CRC (eight bytes per step) against the bit-by-bit
// definition, for every length 0..300 and every start offset 0..7.
TEST(SnapshotEnvelope, Crc32AgreesWithTheBitwiseDefinition) {
  auto bitwise = [](std::string_view d) {
    std::uint32_t c = 0xFFFFFFFFu;
    for (unsigned char b : d) {
      c ^= b;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
  };
  std::string bytes(310, '\0');
  std::uint32_t x = 12345;
  for (auto& b : bytes) b = static_cast<char>((x = x * 1103515245u + 12345u) >> 16);
  for (std::size_t offset = 0; offset < 8; ++offset) {
    for (std::size_t len = 0; len <= 300; ++len) {
      const std::string_view d(bytes.data() + offset, len);
      ASSERT_EQ(crc32(d), bitwise(d)) << "offset " << offset << " length " << len;
    }
  }
}

std::string wrap(std::string_view data) {
  std::string out(kSnapshotHeaderBytes + data.size(), '\0');
  write_snapshot_header(out.data(), data);
  std::memcpy(out.data() + kSnapshotHeaderBytes, data.data(), data.size());
  return out;
}

TEST(SnapshotEnvelope, RoundTrips) {
  for (std::string data : {std::string(), std::string("state"), std::string(100000, 'q')}) {
    const std::string wrapped = wrap(data);
    auto r = unwrap_snapshot(wrapped);
    ASSERT_TRUE(r.has_value()) << r.error().message();
    EXPECT_EQ(*r, data);
  }
}

TEST(SnapshotEnvelope, RejectsGarbageTruncationAndBitFlips) {
  EXPECT_EQ(unwrap_snapshot(std::string(100, 'G')).error().code(), Code::data_loss);
  EXPECT_EQ(unwrap_snapshot("").error().code(), Code::data_loss);
  const std::string good = wrap("some replicated state");
  for (std::size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(unwrap_snapshot(std::string_view(good).substr(0, n)).has_value()) << n;
  }
  std::string flipped = good;
  flipped.back() ^= 1;
  auto r = unwrap_snapshot(flipped);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("checksum"), std::string::npos);
  std::string newer = good;
  newer[4] = 2;
  EXPECT_EQ(unwrap_snapshot(newer).error().code(), Code::unimplemented);
}

}  // namespace
}  // namespace catga::internal
