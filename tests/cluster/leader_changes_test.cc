// What a node counts as a change of leader (src/cluster/leader_changes.hpp).
#include "cluster/leader_changes.hpp"

#include <gtest/gtest.h>

namespace {

using catga::internal::LeaderChanges;

TEST(LeaderChanges, TheFirstLeaderKnownIsNotAChange) {
  LeaderChanges changes;
  EXPECT_FALSE(changes.observe(0, 0));
  EXPECT_FALSE(changes.observe(0, 1));
  EXPECT_FALSE(changes.observe(2, 1));
  EXPECT_FALSE(changes.observe(2, 1));
}

// A follower whose pre-vote failed forgets the leader while it asks; the
// term does not move, and the same leader is heard from again.
TEST(LeaderChanges, LosingSightOfTheLeaderInTheSameTermIsNotAChange) {
  LeaderChanges changes;
  changes.observe(2, 5);
  EXPECT_FALSE(changes.observe(0, 5));
  EXPECT_FALSE(changes.observe(2, 5));
  EXPECT_FALSE(changes.observe(0, 5));
  EXPECT_FALSE(changes.observe(2, 5));
}

TEST(LeaderChanges, AnotherLeaderOrTheSameOneElectedAgainIsOne) {
  LeaderChanges changes;
  changes.observe(2, 5);
  EXPECT_TRUE(changes.observe(3, 6));   // another member
  EXPECT_FALSE(changes.observe(0, 7));  // an election under way
  EXPECT_TRUE(changes.observe(3, 7));   // the same member, elected again
  EXPECT_TRUE(changes.observe(1, 7));   // heard of only now (no "none" in between)
}

}  // namespace
