// `relais backfill` killed with SIGKILL in the middle of a run, then run again: every record
// ends stored exactly once (the batch in flight is sent again and answered as duplicates
// thanks to the source's idempotency key), no line is lost, the rejected lines are reported
// once (line number, status, error; never the content), and the summary adds up.

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>

#include "tests/support/relais_process.h"

namespace relais::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr int kRecords = 5000;
const std::vector<int> kBadLines = {7, 2500, 4999};  // 1-based line numbers of broken lines

const char* kBody =
    "sources:\n"
    "  cms76:\n"
    "    type: $.event\n"
    "    correlation: \"demande:{$.demande.numero}\"\n"
    "    idempotency: $.id\n";

std::string sql(const std::string& db, const std::string& statement) {
  CommandResult r = run_command({"/usr/bin/sqlite3", "-readonly", db, statement});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::string out = r.out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

uint64_t number_after(const std::string& text, const std::string& label) {
  std::smatch m;
  std::string digits;
  if (!std::regex_search(text, m, std::regex(label + " ([0-9,]+)"))) return UINT64_MAX;
  for (char c : m[1].str()) {
    if (c != ',') digits += c;
  }
  return std::stoull(digits);
}

TEST(BackfillTest, KilledMidRunThenResumedStoresEveryRecordExactlyOnce) {
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.body_yaml = kBody;
  o.log_level = "warn";
  RelaisProcess relais(o);
  relais.start();

  const std::string input = relais.dir() + "/input.ndjson";
  {
    std::ofstream out(input);
    int bad = 0;
    for (int line = 1; line <= kRecords; ++line) {
      if (bad < static_cast<int>(kBadLines.size()) && line == kBadLines[bad]) {
        out << "{\"event\": \"demande.created\", \"id\": broken\n";
        ++bad;
        continue;
      }
      out << R"({"event":"demande.created","id":"bf-)" << line << R"(","demande":{"numero":)"
          << line << R"(,"service":"Demande sociale"}})"
          << "\n";
    }
  }
  const int valid = kRecords - static_cast<int>(kBadLines.size());
  const std::string state = relais.dir() + "/state.json";
  const std::string report = relais.dir() + "/report.tsv";
  std::vector<std::string> argv = {RELAIS_BINARY, "backfill",
                                   "--input",     input,
                                   "--source",    "cms76",
                                   "--server",    relais.base_url(),
                                   "--token",     relais.system_token(),
                                   "--batch",     "25",
                                   "--parallel",  "2",
                                   "--state",     state,
                                   "--report",    report};

  // First run: killed once some batches are acknowledged, well before the end.
  pid_t pid = start_command(argv, relais.dir() + "/run1.out", relais.dir() + "/run1.err");
  bool acknowledged = wait_until(
      [&] {
        std::string s = read_file(state);
        return s.find("\"line\"") != std::string::npos && s.find("\"line\":0") == std::string::npos;
      },
      milliseconds(30000), milliseconds(1));
  ::kill(pid, SIGKILL);
  EXPECT_EQ(wait_command(pid, milliseconds(10000)), 128 + SIGKILL);
  ASSERT_TRUE(acknowledged) << read_file(relais.dir() + "/run1.err");
  std::string killed_state = read_file(state);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(killed_state, m, std::regex("\"line\":([0-9]+)")));
  uint64_t line_at_kill = std::stoull(m[1].str());
  EXPECT_LT(line_at_kill, static_cast<uint64_t>(kRecords)) << "the run ended before the kill";
  std::cout << "killed after line " << line_at_kill << " was acknowledged" << std::endl;

  // Second run: resumes and finishes.
  CommandResult second = run_command(argv, milliseconds(120000));
  EXPECT_EQ(second.exit_code, 1) << "1 = some lines rejected\n" << second.err << second.out;
  EXPECT_NE(second.err.find("resuming at line"), std::string::npos) << second.err;

  uint64_t accepted = number_after(second.out, "accepted");
  uint64_t duplicates = number_after(second.out, "duplicates");
  uint64_t rejected = number_after(second.out, "rejected");
  EXPECT_EQ(accepted + duplicates, static_cast<uint64_t>(valid)) << second.out;
  EXPECT_EQ(rejected, kBadLines.size()) << second.out;
  EXPECT_NE(second.out.find("5,000 line(s)"), std::string::npos) << second.out;

  // The store: every valid record once, none twice.
  std::string db = relais.store_path();
  EXPECT_EQ(sql(db, "SELECT COUNT(*) FROM messages"), std::to_string(valid));
  EXPECT_EQ(sql(db, "SELECT COUNT(DISTINCT idempotency) FROM messages"), std::to_string(valid));

  // The report: the broken lines, once each, without their content.
  std::string rep = read_file(report);
  for (int line : kBadLines) {
    EXPECT_NE(rep.find(std::to_string(line) + "\t400\t"), std::string::npos) << rep;
  }
  EXPECT_EQ(std::count(rep.begin(), rep.end(), '\n'), static_cast<long>(kBadLines.size())) << rep;
  EXPECT_EQ(rep.find("broken"), std::string::npos) << "the report holds a line's content";

  // A third run has nothing left to send.
  CommandResult third = run_command(argv, milliseconds(30000));
  EXPECT_NE(third.err.find("nothing left to send"), std::string::npos) << third.err;
  EXPECT_EQ(sql(db, "SELECT COUNT(*) FROM messages"), std::to_string(valid));
  EXPECT_EQ(relais.stop(), 0);
}

}  // namespace
}  // namespace relais::testing
