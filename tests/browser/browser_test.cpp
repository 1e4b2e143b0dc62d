// Drives the browser test of the console (console_test.mjs, real Chromium via playwright-core)
// against one relais on loopback: the scenario's destination refuses the first delivery of two
// RDVs and accepts everything else (console_scenario.h); the support and admin users are
// created, the messages posted, then the script runs with node and must pass. Screenshots land
// in the build folder. The same scenario on two nodes behind nginx: cluster_browser_test.cpp.

#include <gtest/gtest.h>

#include "tests/browser/console_scenario.h"
#include "tests/support/relais_process.h"

namespace relais::testing {
namespace {

TEST(ConsoleBrowser, SupportRetriesAndAdminPublishesInChromium) {
  ConsoleScenario::require_browser();
  if (HasFatalFailure()) return;
  ConsoleScenario scenario;
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.body_yaml = scenario.body_yaml();
  RelaisProcess relais(o);
  relais.start();
  HttpClient admin = relais.client();
  scenario.prepare(admin);
  if (HasFatalFailure()) return;

  auto run = scenario.run_browser(relais.base_url(), RELAIS_SCREENSHOTS);
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  scenario.check_outcome(admin);
}

}  // namespace
}  // namespace relais::testing
