// Fuzz target: catga::internal::decode_record_batch — a Raft log entry as read
// from disk or received from the leader.
// Properties: no crash or UB; records point into the input; an accepted entry
// is exactly what encode_record_batch writes for its header and records
// (reserved fields aside, which the decoder ignores); errors are data_loss or,
// for Catga's magic with an unknown version/kind, unimplemented; a batch built
// from the input decodes back exactly, through both writers, and loses every
// trailing 8 bytes loudly.
#include <vector>

#include "cluster/entry_format.hpp"
#include "fuzz_support.hpp"

namespace catga::fuzz {

int fuzz_entry_batch(const std::uint8_t* data, std::size_t size) {
  using namespace catga::internal;
  const std::string_view in = as_view(data, size);
  if (auto b = decode_record_batch(in)) {
    FUZZ_CHECK(in.size() % 8 == 0 && in.size() >= kEntryHeaderBytes);
    for (auto rec : b->records) FUZZ_CHECK(points_into(in, rec));
    std::string expected(in);
    for (std::size_t i : {6, 7, 28, 29, 30, 31}) expected[i] = 0;  // reserved: not checked by the decoder
    FUZZ_CHECK(encode_record_batch(b->header, b->records) == expected);
  } else {
    const Code code = b.error().code();
    FUZZ_CHECK(code == Code::data_loss || code == Code::unimplemented);
    if (code == Code::unimplemented) FUZZ_CHECK(in.size() >= kEntryHeaderBytes && in.substr(0, 4) == "CATG");
  }

  // A batch built from the input.
  FuzzInput r(data, size);
  EntryHeader header{r.u64(), static_cast<std::int64_t>(r.u64())};
  const std::size_t n = r.below(24);
  std::vector<std::string> owned;
  for (std::size_t i = 0; i < n; ++i) owned.push_back(r.bytes(96));
  std::vector<std::string_view> records(owned.begin(), owned.end());
  std::size_t record_bytes = 0;
  for (auto rec : records) record_bytes += rec.size();
  const std::string encoded = encode_record_batch(header, records);
  FUZZ_CHECK(encoded.size() == record_batch_size(n, record_bytes) && encoded.size() % 8 == 0);
  std::string written(encoded.size(), '\x55');
  RecordBatchWriter w(written.data(), written.size(), header, static_cast<std::uint32_t>(n));
  for (auto rec : records) w.add(rec);
  FUZZ_CHECK(w.finish() == written.size());
  FUZZ_CHECK(written == encoded);
  auto d = decode_record_batch(encoded);
  FUZZ_CHECK(d.has_value());
  FUZZ_CHECK(d->header.term == header.term && d->header.leader_time_ns == header.leader_time_ns);
  FUZZ_CHECK(d->records == records);
  FUZZ_CHECK(!decode_record_batch(std::string_view(encoded).substr(0, encoded.size() - 8)).has_value());
  return 0;
}

}  // namespace catga::fuzz
