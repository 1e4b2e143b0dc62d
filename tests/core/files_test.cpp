// The descriptor budget (core/files.h): a server whose soft limit is a service manager's
// default raises it within the hard limit, and never lowers it.

#include <sys/resource.h>

#include <gtest/gtest.h>

#include <algorithm>

#include "core/files.h"

namespace relais {
namespace {

// Restores the process's limit when the test ends.
struct KeepLimit {
  rlimit saved{};
  KeepLimit() { ::getrlimit(RLIMIT_NOFILE, &saved); }
  ~KeepLimit() { ::setrlimit(RLIMIT_NOFILE, &saved); }
};

TEST(DescriptorLimit, IsRaisedWithinTheHardLimitAndNeverLowered) {
  KeepLimit keep;
  rlimit l = keep.saved;
  // What can be asked for here: 2,048, or the hard limit when it is lower.
  const long target = l.rlim_max == RLIM_INFINITY ? 2048 : std::min<long>(2048, l.rlim_max);
  ASSERT_GT(target, 64) << "a hard limit of open files this low leaves nothing to show";
  l.rlim_cur = 64;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &l), 0);
  EXPECT_EQ(raise_descriptor_limit(target), target);
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &l), 0);
  EXPECT_EQ(static_cast<long>(l.rlim_cur), target);
  EXPECT_EQ(raise_descriptor_limit(32), target) << "never lowered";
  if (l.rlim_max != RLIM_INFINITY) {
    long hard = static_cast<long>(l.rlim_max);
    EXPECT_EQ(raise_descriptor_limit(hard + 1000), hard) << "bounded by the hard limit";
  }
}

}  // namespace
}  // namespace relais
