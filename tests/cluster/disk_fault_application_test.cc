// Disk faults under a durable Application (disk_fault_fixture.hpp): what a
// caller sees when the data directory fills, and that nothing acknowledged
// is lost.
#include "disk_fault_fixture.hpp"

#include <iostream>
#include <optional>

#include "catga/testing.hpp"
#include "support/bank.hpp"

namespace {

using catga::Code;
using catga::testing::SmallDisk;
using ::testing::HasSubstr;
using testsupport::wait_for;

// A durable single-node Application whose data_dir fills: commands answer
// resource_exhausted at once with the reason (the caller's retry rule: nothing
// happened), queries keep working, and once space is back commands succeed
// again; after a restart every acknowledged account is there.
TEST(DiskFaultApplication, FullDiskAnswersResourceExhaustedAndKeepsAcknowledgedCommands) {
  std::string why;
  auto disk = SmallDisk::create(catga::internal::disk_fault_test::kDiskMiB, why);
  if (!disk) GTEST_SKIP() << why;
  const auto data = disk->path() / "data";
  auto open = [&] {
    catga::ApplicationBuilder<bank::State> b;
    bank::register_handlers(b).data_dir(data);
    auto app = b.build();
    EXPECT_TRUE(app.has_value()) << (app ? "" : app.error().to_string());
    if (!app) return std::unique_ptr<catga::Application>();
    EXPECT_TRUE(wait_for([&] { return (*app)->status().ready; }));
    return std::move(*app);
  };
  std::vector<std::uint64_t> acknowledged;
  const std::string big_owner(32 << 10, 'o');
  {
    auto app = open();
    ASSERT_TRUE(app);
    for (int i = 0; i < 10; ++i) {
      auto a = app->send(bank::Open{.owner = "early" + std::to_string(i), .initial = i});
      ASSERT_TRUE(a.has_value()) << a.error();
      acknowledged.push_back(a->id);
    }
    disk->fill(0);
    std::optional<catga::Error> refusal;
    for (int i = 0; i < catga::internal::disk_fault_test::kEnoughToFillTheDisk && !refusal; ++i) {
      auto a = app->send(bank::Open{.owner = big_owner, .initial = i});
      if (a) acknowledged.push_back(a->id);
      else refusal = a.error();
    }
    ASSERT_TRUE(refusal) << "the disk never filled";
    std::cerr << "Application on a full disk -> " << *refusal << "\n";
    EXPECT_EQ(refusal->code(), Code::resource_exhausted);
    EXPECT_THAT(refusal->message(), HasSubstr("not enough disk space"));
    EXPECT_THAT(refusal->message(), HasSubstr(data.string()));
    // Reads still work.
    auto first = app->send(bank::GetAccount{.account = acknowledged.front()});
    ASSERT_TRUE(first.has_value()) << first.error();
    EXPECT_EQ(first->owner, "early0");

    disk->free_space();
    EXPECT_TRUE(wait_for(
        [&] {
          auto a = app->send(bank::Open{.owner = "after"});
          if (a) acknowledged.push_back(a->id);
          return a.has_value();
        },
        std::chrono::seconds(60)));
  }
  auto app = open();
  ASSERT_TRUE(app);
  for (std::uint64_t id : acknowledged) {
    auto a = app->send(bank::GetAccount{.account = id}, {.consistency = catga::Consistency::linearizable});
    EXPECT_TRUE(a.has_value()) << "acknowledged account " << id << " lost: " << a.error();
  }
}

}  // namespace
