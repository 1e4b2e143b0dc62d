// relais_mapping_tests: compiles mapping files and runs the *.test.yaml beside each.
//
//   relais_mapping_tests [--tables DIR] MAPPING.yaml|DIR ...
//
// Without --tables, the tables are read from ../tables relative to each mapping file.
// Exit status 0 when every mapping compiles and every case passes.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "mappings/mapping.h"

namespace fs = std::filesystem;
using namespace relais::mappings;

namespace {

bool is_test_file(const fs::path& p) {
  const std::string n = p.filename().string();
  return n.size() > 10 && n.compare(n.size() - 10, 10, ".test.yaml") == 0;
}

int run_one(const fs::path& file, const std::string& tables_dir) {
  std::vector<Diagnostic> diags;
  const std::string dir =
      tables_dir.empty() ? (file.parent_path() / ".." / "tables").string() : tables_dir;
  auto tables = fs::is_directory(dir) ? TableSet::load_dir(dir, diags) : TableSet::empty();
  for (const auto& d : diags) std::cerr << to_string(d) << "\n";
  if (!diags.empty()) return 1;
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::cerr << file.string() << ": cannot read\n";
    return 1;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  auto m = compile(ss.str(), file.string(), tables, diags);
  if (!m) {
    for (const auto& d : diags) std::cerr << to_string(d) << "\n";
    std::cerr << "FAIL " << file.filename().string() << ": does not compile\n";
    return 1;
  }
  fs::path test = file;
  test.replace_extension(".test.yaml");
  if (!fs::exists(test)) {
    std::cerr << "FAIL " << file.filename().string() << ": no " << test.filename().string()
              << " beside it (every mapping needs test cases)\n";
    return 1;
  }
  auto failures = run_test_file(test.string(), *m, diags);
  for (const auto& d : diags) std::cerr << to_string(d) << "\n";
  for (const auto& f : failures) std::cerr << f << "\n";
  const int cases = last_test_case_count();
  if (!failures.empty()) {
    std::cerr << "FAIL " << m->name() << ": " << failures.size() << " failure(s) in " << cases
              << " case(s)\n";
    return 1;
  }
  std::cout << "ok   " << m->name() << ": " << cases << " case(s) passed\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string tables_dir;
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--tables" && i + 1 < argc) {
      tables_dir = argv[++i];
    } else if (a == "-h" || a == "--help") {
      std::cout << "usage: relais_mapping_tests [--tables DIR] MAPPING.yaml|DIR ...\n";
      return 0;
    } else if (fs::is_directory(a)) {
      std::vector<fs::path> found;
      for (const auto& e : fs::directory_iterator(a))
        if (e.path().extension() == ".yaml" && !is_test_file(e.path())) found.push_back(e.path());
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else {
      files.emplace_back(a);
    }
  }
  if (files.empty()) {
    std::cerr << "usage: relais_mapping_tests [--tables DIR] MAPPING.yaml|DIR ...\n";
    return 2;
  }
  int failed = 0;
  for (const auto& f : files) failed += run_one(f, tables_dir);
  return failed == 0 ? 0 : 1;
}
