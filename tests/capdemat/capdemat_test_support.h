#pragma once
// What the Capdémat tests share: the fixtures' folder (RELAIS_SHARED_DIR), the synthetic request
// of tests/capdemat/data (its id replaced), and the configuration blocks of the connector and
// the poller pointed at a simulator.

#include <fstream>
#include <sstream>
#include <string>

#include <yaml-cpp/yaml.h>

namespace relais::testing {

inline std::string capdemat_fixtures() {
  return std::string(RELAIS_SHARED_DIR) + "/fixtures/capdemat";
}
inline std::string capdemat_workflow() {
  return capdemat_fixtures() + "/workflow/requestWorkflow.xml";
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The synthetic HomeFolderModificationRequest (valid against its schema) with Capdémat id `id`.
inline std::string hfmr_request(const std::string& id) {
  std::string x = slurp(std::string(RELAIS_SOURCE_DIR) + "/tests/capdemat/data/hfmr_request.xml");
  const std::string old = "<cvq:Id>4021</cvq:Id>";
  x.replace(x.find(old), old.size(), "<cvq:Id>" + id + "</cvq:Id>");
  return x;
}

// The children of the request's root element (a RequestType's content, for GetRequests).
inline std::string hfmr_inner(const std::string& id) {
  std::string x = hfmr_request(id);
  auto root = x.find("<hfmr:HomeFolderModificationRequest");
  auto start = x.find('>', root) + 1;
  auto end = x.rfind("</hfmr:HomeFolderModificationRequest>");
  return x.substr(start, end - start);
}

// The reader's keys (schemas, fields), shared by the inbound block and the poller.
inline void capdemat_reader(YAML::Node n) {
  n["schemas"]["folder"] = capdemat_fixtures();
  n["schemas"]["rewrites"]["http://people.zenexity.fr/~bor/capdemat/latest/"] = ".";
  n["schemas"]["types"]["HomeFolderModificationRequest"] =
      "request/HomeFolderModificationRequest.xsd";
  n["schemas"]["types"]["GetRequestsResponse"] = "external/GetRequests.xsd";
  n["fields"]["$.type"] = "'demande.capdemat'";
  n["fields"]["$.demande.capdemat_id"] = "cvq:Id";
  n["fields"]["$.demande.type_capdemat"] = "cvq:RequestTypeLabel";
  n["fields"]["$.demande.etat_capdemat"] = "cvq:State";
  n["fields"]["$.demande.foyer_capdemat"] = "cvq:HomeFolder/cvq:Id";
  n["required"].push_back("$.demande.capdemat_id");
}

}  // namespace relais::testing
