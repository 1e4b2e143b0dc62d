#include "core/files.h"

#include <sys/resource.h>

#include <fstream>
#include <sstream>

namespace relais {

bool read_text_file(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return false;
  out = buf.str();
  return true;
}

long raise_descriptor_limit(long wanted) {
  rlimit l{};
  if (::getrlimit(RLIMIT_NOFILE, &l) != 0) return -1;
  if (l.rlim_cur != RLIM_INFINITY && static_cast<long>(l.rlim_cur) < wanted) {
    rlim_t target = static_cast<rlim_t>(wanted);
    if (l.rlim_max != RLIM_INFINITY && target > l.rlim_max) target = l.rlim_max;
    rlimit raised = l;
    raised.rlim_cur = target;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) l = raised;
  }
  return l.rlim_cur == RLIM_INFINITY ? wanted : static_cast<long>(l.rlim_cur);
}

}  // namespace relais
