// `relais ban geocode-csv`: geocodes a CSV file of addresses through the BAN's /search/csv
// endpoint in chunks, for backfills, printing the progress.

#include <fstream>
#include <iostream>
#include <sstream>

#include "apps/commands.h"
#include "connectors/ban/ban.h"
#include "core/files.h"

namespace relais {
namespace {

const char* kUsage =
    "usage: relais ban geocode-csv --input FILE.csv [--output OUT.csv] [--url CSV_URL] "
    "[--chunk N]\n\n"
    "Geocodes every row of FILE.csv (a header line, then one address per line; columns "
    "numero, voie, code_postal, commune — or number, street, postcode, city) through the BAN "
    "/search/csv endpoint (default https://data.geopf.fr/geocodage/search/csv), N rows per "
    "request (default 1000), and writes the rows with the BAN columns added (ban_status, "
    "ban_score, ban_label, ban_id, ban_postcode, ban_citycode, ban_city, ban_lon, ban_lat) to "
    "OUT.csv (default: standard output). Progress goes to standard error. Exit 0 when every "
    "chunk was answered, 1 otherwise.\n";

std::string arg(int argc, char** argv, const std::string& name) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return argv[i + 1];
  }
  return {};
}

int column(const std::vector<std::string>& header, std::initializer_list<const char*> names) {
  for (size_t i = 0; i < header.size(); ++i) {
    for (const char* n : names) {
      if (header[i] == n) return static_cast<int>(i);
    }
  }
  return -1;
}

std::string cell(const std::vector<std::string>& row, int i) {
  return i >= 0 && static_cast<size_t>(i) < row.size() ? row[static_cast<size_t>(i)] : "";
}

std::string text_of(const nlohmann::json& data, const char* key) {
  if (!data.is_object() || !data.contains(key)) return "";
  const auto& v = data[key];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

}  // namespace

int ban_command(int argc, char** argv) {
  bool help = false;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") help = true;
  }
  std::string input = arg(argc, argv, "--input");
  if (help || argc < 2 || std::string(argv[1]) != "geocode-csv" || input.empty()) {
    (help ? std::cout : std::cerr) << kUsage;
    return help ? 0 : 64;
  }
  std::string text;
  if (!read_text_file(input, text)) {
    std::cerr << "relais ban: cannot read " << input << "\n";
    return 64;
  }
  auto rows = ban::csv_parse(text);
  if (rows.empty()) {
    std::cerr << "relais ban: " << input << " has no header line\n";
    return 1;
  }
  const auto& header = rows.front();
  int c_number = column(header, {"numero", "number"});
  int c_street = column(header, {"voie", "street"});
  int c_postcode = column(header, {"code_postal", "postcode"});
  int c_city = column(header, {"commune", "localite", "city"});
  if (c_street < 0 && c_city < 0) {
    std::cerr << "relais ban: " << input
              << ": no address columns (numero, voie, code_postal, commune)\n";
    return 1;
  }
  std::vector<ban::Address> addresses;
  for (size_t r = 1; r < rows.size(); ++r) {
    ban::Address a;
    a.number = cell(rows[r], c_number);
    a.street = cell(rows[r], c_street);
    a.postcode = cell(rows[r], c_postcode);
    a.city = cell(rows[r], c_city);
    addresses.push_back(std::move(a));
  }
  ban::BulkGeocoder::Settings settings;
  if (!arg(argc, argv, "--url").empty()) settings.csv_url = arg(argc, argv, "--url");
  if (!arg(argc, argv, "--chunk").empty()) {
    settings.chunk_size =
        static_cast<size_t>(std::max(1, std::atoi(arg(argc, argv, "--chunk").c_str())));
  }
  ban::BulkGeocoder geocoder(settings);
  auto results = geocoder.geocode(addresses, [](size_t done, size_t total) {
    std::cerr << "ban: " << done << "/" << total << " (" << (total ? done * 100 / total : 100)
              << " %)" << std::endl;
    return true;
  });
  std::ofstream file;
  std::string output = arg(argc, argv, "--output");
  if (!output.empty()) file.open(output, std::ios::binary);
  std::ostream& out = output.empty() ? std::cout : file;
  auto line = [&](const std::vector<std::string>& fields) {
    for (size_t i = 0; i < fields.size(); ++i) out << (i ? "," : "") << ban::csv_escape(fields[i]);
    out << "\n";
  };
  std::vector<std::string> head = header;
  for (const char* c : {"ban_status", "ban_score", "ban_label", "ban_id", "ban_postcode",
                        "ban_citycode", "ban_city", "ban_lon", "ban_lat"}) {
    head.push_back(c);
  }
  line(head);
  size_t failed = 0, found = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    std::vector<std::string> row = rows[i + 1];
    const auto& res = results[i];
    const auto& d = res.match.data;
    if (!res.ok) ++failed;
    if (res.ok && res.match.found) ++found;
    row.push_back(!res.ok ? "error: " + res.error : res.match.found ? "found" : "not found");
    row.push_back(res.ok && res.match.found ? std::to_string(res.match.score) : "");
    for (const char* k : {"label", "id", "postcode", "citycode", "city", "lon", "lat"}) {
      row.push_back(text_of(d, k));
    }
    line(row);
  }
  std::cerr << "ban: " << results.size() << " rows, " << found << " found, " << failed
            << " not answered" << std::endl;
  return failed == 0 ? 0 : 1;
}

}  // namespace relais
