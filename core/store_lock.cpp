#include "core/store_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

namespace relais {
namespace {

// The file's text: "PID\nURL\n" (URL optional).
StoreHolder read_holder(int fd) {
  StoreHolder h;
  h.held = true;
  char buf[512];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return h;
  std::string text(buf, static_cast<size_t>(n));
  size_t nl = text.find('\n');
  h.pid = std::strtol(text.substr(0, nl).c_str(), nullptr, 10);
  if (nl != std::string::npos) {
    std::string url = text.substr(nl + 1);
    while (!url.empty() && (url.back() == '\n' || url.back() == '\r')) url.pop_back();
    h.url = url;
  }
  return h;
}

void write_text(int fd, const std::string& text) {
  if (ftruncate(fd, 0) != 0) return;
  // Best effort: the text is informative; the lock is what counts.
  ssize_t ignored = pwrite(fd, text.data(), text.size(), 0);
  (void)ignored;
}

std::string holder_text(const StoreHolder& h) {
  return h.pid > 0 ? "pid " + std::to_string(h.pid) : "pid unknown";
}

}  // namespace

StoreLock::~StoreLock() {
  if (fd_ >= 0) {
    flock(fd_, LOCK_UN);
    close(fd_);
  }
}

std::unique_ptr<StoreLock> StoreLock::exclusive(const std::string& store_path,
                                                std::chrono::milliseconds wait) {
  std::string path = lock_path(store_path);
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw std::runtime_error("cannot open the lock file " + path + ": " + std::strerror(errno));
  }
  auto deadline = std::chrono::steady_clock::now() + wait;
  while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) {
      int e = errno;
      close(fd);
      throw std::runtime_error("cannot lock " + path + ": " + std::strerror(e));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      // A server holds it exclusively (a command holding it shared is never that long).
      StoreHolder h = read_holder(fd);
      close(fd);
      throw std::runtime_error("the store " + store_path + " is held by another relais (" +
                               holder_text(h) + ", lock " + path + "): stop it first");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  write_text(fd, std::to_string(getpid()) + "\n");
  return std::unique_ptr<StoreLock>(new StoreLock(fd));
}

std::unique_ptr<StoreLock> StoreLock::shared(const std::string& store_path, StoreHolder& holder) {
  holder = StoreHolder{};
  std::string path = lock_path(store_path);
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw std::runtime_error("cannot open the lock file " + path + ": " + std::strerror(errno));
  }
  while (flock(fd, LOCK_SH | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) holder = read_holder(fd);
    int e = errno;
    close(fd);
    if (e == EWOULDBLOCK) return nullptr;
    throw std::runtime_error("cannot lock " + path + ": " + std::strerror(e));
  }
  return std::unique_ptr<StoreLock>(new StoreLock(fd));
}

void StoreLock::publish_url(const std::string& url) {
  write_text(fd_, std::to_string(getpid()) + "\n" + url + "\n");
}

}  // namespace relais
