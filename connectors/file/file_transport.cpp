#include "connectors/file/file_transport.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace relais::file {
namespace {

std::string cause(int err) {
  return std::strerror(err);
}

Status fail(int http, const std::string& what, const std::string& path, int err) {
  return Status::failure(http, what, path + " : " + cause(err));
}

std::string parent_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// fsync of a folder, so that a rename or a creation inside it survives a crash.
Status sync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail(503, "dossier non synchronisé", dir, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return fail(503, "dossier non synchronisé", dir, err);
  return Status::success();
}

class LocalTransport final : public FileTransport {
 public:
  Status list(const std::string& dir, std::vector<FileEntry>& out) override {
    out.clear();
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
      return fail(503, errno == ENOENT ? "dossier introuvable" : "dossier illisible", dir, errno);
    }
    while (dirent* e = ::readdir(d)) {
      struct stat st {};
      if (::fstatat(::dirfd(d), e->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode)) continue;
      FileEntry f;
      f.name = e->d_name;
      f.size = st.st_size;
      f.mtime_ms = int64_t(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
      out.push_back(std::move(f));
    }
    ::closedir(d);
    return Status::success();
  }

  Status read(const std::string& path, int64_t offset, size_t max, std::string& out) override {
    out.clear();
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(errno == ENOENT ? 404 : 503, "fichier illisible", path, errno);
    out.resize(max);
    size_t got = 0;
    while (got < max) {
      ssize_t n = ::pread(fd, out.data() + got, max - got, offset + int64_t(got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        ::close(fd);
        out.clear();
        return fail(503, "fichier illisible", path, err);
      }
      if (n == 0) break;
      got += size_t(n);
    }
    ::close(fd);
    out.resize(got);
    return Status::success();
  }

  Status move(const std::string& from, const std::string& to) override {
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) != 0) {
      int err = errno;
      if (err == EEXIST) return fail(409, "déplacement refusé : la cible existe", to, err);
      if (err != EINVAL && err != ENOSYS) return fail(503, "déplacement impossible", from, err);
      // No RENAME_NOREPLACE here: link refuses an existing target, then the old name goes.
      if (::link(from.c_str(), to.c_str()) != 0) {
        err = errno;
        return fail(err == EEXIST ? 409 : 503, "déplacement impossible", to, err);
      }
      if (::unlink(from.c_str()) != 0) return fail(503, "déplacement inachevé", from, errno);
    }
    Status s = sync_dir(parent_of(to));
    if (!s.ok) return s;
    return parent_of(to) == parent_of(from) ? s : sync_dir(parent_of(from));
  }

  Status write(const std::string& path, const std::string& data, bool append) override {
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC);
    bool existed = ::access(path.c_str(), F_OK) == 0;
    int fd = ::open(path.c_str(), flags, 0640);
    if (fd < 0) return fail(503, "écriture impossible", path, errno);
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::write(fd, data.data() + done, data.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        ::close(fd);
        return fail(503, "écriture impossible", path, err);
      }
      done += size_t(n);
    }
    int rc = ::fdatasync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return fail(503, "écriture non synchronisée", path, err);
    return existed ? Status::success() : sync_dir(parent_of(path));
  }

  Status remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return fail(503, "suppression impossible", path, errno);
    }
    return Status::success();
  }

  Status make_dir(const std::string& dir) override {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return Status::failure(503, "dossier non créé", dir + " : " + ec.message());
    return Status::success();
  }
};

}  // namespace

std::unique_ptr<FileTransport> local_transport() {
  return std::make_unique<LocalTransport>();
}

}  // namespace relais::file
