#include "connectors/file/file_config.h"

#include <filesystem>
#include <stdexcept>

#include "connectors/file/sftp_transport.h"

namespace relais::file {

std::string folder_path(const ConfigView& c, const std::string& key, const std::string& base_dir) {
  std::string text = c.str(key);
  bool remote = c.has("sftp");
  if (remote && (text.empty() || text[0] != '/')) {
    throw std::invalid_argument(c.path() + "." + key +
                                ": an absolute path on the SFTP server expected");
  }
  std::filesystem::path p(text);
  if (!remote && !p.is_absolute()) p = std::filesystem::path(base_dir) / p;
  std::string n = p.lexically_normal().string();
  while (n.size() > 1 && n.back() == '/') n.pop_back();
  return n;
}

std::unique_ptr<FileTransport> transport_for(const ConfigView& c, const std::string& base_dir) {
  if (!c.has("sftp")) return local_transport();
  return sftp_transport(sftp_settings(c.object("sftp"), base_dir));
}

void check_transport(const ConfigView& c) {
  if (c.has("sftp")) sftp_settings(c.object("sftp"), "/");
}

char single_char(const ConfigView& c, const std::string& key) {
  std::string v = c.str(key);
  if (v == "\\t" || v == "tab") return '\t';
  if (v.size() != 1) {
    std::string why = c.path();
    why.append(".").append(key).append(": one character expected, not \"").append(v).append("\"");
    throw std::invalid_argument(why);
  }
  return v[0];
}

}  // namespace relais::file
