// The descriptor budget (core/files.h): a server whose soft limit is a service manager's
// default raises it within the hard limit, and never lowers it.

#include <sys/resource.h>

#include <gtest/gtest.h>

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
  if (l.rlim_max != RLIM_INFINITY && l.rlim_max < 2048) {
    // Cannot be shown here; the call must still not lower anything.
    EXPECT_GE(raise_descriptor_limit(64), 64);
    return;
  }
  l.rlim_cur = 256;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &l), 0);
  EXPECT_EQ(raise_descriptor_limit(2048), 2048);
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &l), 0);
  EXPECT_EQ(l.rlim_cur, 2048u);
  EXPECT_EQ(raise_descriptor_limit(512), 2048) << "never lowered";
  if (l.rlim_max != RLIM_INFINITY) {
    long hard = static_cast<long>(l.rlim_max);
    EXPECT_EQ(raise_descriptor_limit(hard + 1000), hard) << "bounded by the hard limit";
  }
}

}  // namespace
}  // namespace relais
