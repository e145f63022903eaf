#include "client/lib/reconnect_backoff.h"

#include "gtest/gtest.h"

namespace kvplan::client {
namespace {

using std::chrono::milliseconds;

TEST(ReconnectBackoffTest, DoublesWithEqualJitterUpToTheCeilingAndResets) {
  ReconnectBackoff backoff(milliseconds(100), milliseconds(1000), /*seed=*/7);
  const int64_t ceilings[] = {100, 200, 400, 800, 1000, 1000, 1000};
  for (int64_t ceiling : ceilings) {
    const int64_t wait = backoff.Next().count();
    EXPECT_GE(wait, ceiling / 2);
    EXPECT_LE(wait, ceiling);
  }
  backoff.Reset();
  EXPECT_LE(backoff.Next().count(), 100);
}

TEST(ReconnectBackoffTest, JitterSpreadsNodesStartedTogether) {
  ReconnectBackoff a(milliseconds(1000), milliseconds(1000), 1);
  ReconnectBackoff b(milliseconds(1000), milliseconds(1000), 2);
  int differ = 0;
  for (int i = 0; i < 20; ++i) differ += a.Next() != b.Next();
  EXPECT_GT(differ, 15);
}

}  // namespace
}  // namespace kvplan::client
