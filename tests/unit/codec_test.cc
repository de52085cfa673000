#include "catga/codec.hpp"

#include <gtest/gtest.h>

#include "catga/testing.hpp"
#include "cluster/envelope.hpp"
#include "support/bank.hpp"

using catga::Code;
using namespace catga::testing;
using ::testing::HasSubstr;

TEST(Codec, RoundTripsAMessage) {
  bank::Open open{.owner = "ada", .initial = 10};
  auto bytes = catga::encode(open);
  auto back = catga::decode<bank::Open>(bytes);
  ASSERT_THAT(back, IsOk());
  EXPECT_EQ(back->owner, "ada");
  EXPECT_EQ(back->initial, 10);
}

TEST(Codec, MapFormToleratesMissingAndExtraFields) {
  // {"owner": "bob", "color": "red"} — initial missing, color unknown.
  std::string bytes;
  catga::detail::StringSink sink{&bytes};
  msgpack::packer<catga::detail::StringSink> p(sink);
  p.pack_map(2);
  p.pack(std::string("owner"));
  p.pack(std::string("bob"));
  p.pack(std::string("color"));
  p.pack(std::string("red"));
  auto back = catga::decode<bank::Open>(bytes);
  ASSERT_THAT(back, IsOk());
  EXPECT_EQ(back->owner, "bob");
  EXPECT_EQ(back->initial, 0);
}

TEST(Codec, GarbageIsAnError) {
  EXPECT_THAT(catga::decode<bank::Open>(std::string("\xc1\xc1\xc1", 3)), HasCode(Code::invalid_argument));
  EXPECT_THAT(catga::decode<bank::Open>(""), HasError(Code::invalid_argument, HasSubstr("empty")));
}

TEST(Codec, TruncatedInputIsAnError) {
  auto bytes = catga::encode(bank::Open{.owner = "a long enough owner name", .initial = 1});
  for (std::size_t cut = 1; cut < bytes.size(); ++cut) {
    EXPECT_THAT(catga::decode<bank::Open>(std::string_view(bytes).substr(0, cut)), HasCode(Code::invalid_argument))
        << "cut at " << cut;
  }
}

TEST(Codec, WrongTypeIsAnError) {
  // owner must be a string; here it is an integer.
  std::string bytes;
  catga::detail::StringSink sink{&bytes};
  msgpack::packer<catga::detail::StringSink> p(sink);
  p.pack_map(1);
  p.pack(std::string("owner"));
  p.pack(42);
  EXPECT_THAT(catga::decode<bank::Open>(bytes), HasError(Code::invalid_argument, HasSubstr("bank.open.v1")));
  EXPECT_THAT(catga::decode<bank::Open>(catga::encode(42)), HasCode(Code::invalid_argument));
}

TEST(Codec, OversizedInputIsRejectedBeforeAllocating) {
  auto bytes = catga::encode(bank::Open{.owner = std::string(1000, 'x'), .initial = 1});
  EXPECT_THAT(catga::decode<bank::Open>(bytes, {.max_bytes = 100}), HasError(Code::invalid_argument, HasSubstr("limit")));
  EXPECT_THAT(catga::decode<bank::Open>(bytes, {.max_str = 10}), HasCode(Code::invalid_argument));
  // A header claiming a 4-billion-element array must not allocate it.
  std::string bomb = "\xdd\xff\xff\xff\xff";
  EXPECT_THAT(catga::decode<std::vector<int>>(bomb), HasCode(Code::invalid_argument));
}

TEST(Codec, TrailingBytesAreAnError) {
  auto bytes = catga::encode(1) + catga::encode(2);
  EXPECT_THAT(catga::decode<int>(bytes), HasError(Code::invalid_argument, HasSubstr("trailing")));
}

TEST(Envelope, RoundTrips) {
  using catga::internal::EnvelopeView;
  std::string payload = catga::encode(bank::Deposit{.account = 1, .amount = 5});
  EnvelopeView in{catga::MessageKind::command, "bank.deposit.v1", payload, 42, 7};
  auto bytes = catga::internal::encode_envelope(in);
  auto out = catga::internal::decode_envelope(bytes);
  ASSERT_THAT(out, IsOk());
  EXPECT_EQ(out->kind, catga::MessageKind::command);
  EXPECT_EQ(out->wire_name, "bank.deposit.v1");
  EXPECT_EQ(out->payload, payload);
  EXPECT_EQ(out->session, 42u);
  EXPECT_EQ(out->sequence, 7u);
}

TEST(Envelope, BadInputIsAnError) {
  using catga::internal::decode_envelope;
  EXPECT_THAT(decode_envelope("garbage"), HasCode(Code::invalid_argument));
  EXPECT_THAT(decode_envelope(catga::encode(std::vector<int>{1, 2, 3})), HasError(Code::invalid_argument, HasSubstr("not an envelope")));
  auto good = catga::internal::encode_envelope({catga::MessageKind::event, "x.y.v1", "p", 0, 0});
  for (std::size_t cut = 0; cut < good.size(); ++cut) {
    EXPECT_THAT(decode_envelope(std::string_view(good).substr(0, cut)), HasCode(Code::invalid_argument));
  }
  EXPECT_THAT(decode_envelope(good, 4), HasCode(Code::invalid_argument));
  // A future format is refused, not misread.
  std::string future = good;
  future[1] = 9;
  EXPECT_THAT(decode_envelope(future), HasError(Code::invalid_argument, HasSubstr("format 9")));
}

TEST(EncodedResult, RoundTripsValuesAndErrors) {
  std::string ok;
  catga::detail::encode_result(ok, catga::Result<bank::Account>(bank::Account{.id = 3, .owner = "x", .balance = 9}));
  auto back = catga::detail::decode_result<bank::Account>(ok);
  ASSERT_THAT(back, IsOk());
  EXPECT_EQ(back->balance, 9);
  std::string bad;
  catga::detail::encode_result(bad, catga::Result<int>(catga::Error{Code::failed_precondition, "closed"}));
  EXPECT_THAT(catga::detail::decode_result<int>(bad), HasError(Code::failed_precondition, "closed"));
  EXPECT_THAT(catga::detail::decode_result<int>("zz"), HasCode(Code::internal));
}
