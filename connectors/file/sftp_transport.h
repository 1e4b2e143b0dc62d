#pragma once
// The SFTP side of the file connector: a FileTransport (file_transport.h) over libcurl's SFTP
// (libcurl built with libssh2). The server's host key is always checked against a known_hosts
// file (never "accept any"): a key that differs, or a host the file does not name, is refused
// with a clear French reason before anything is read or written. Authentication by key (OpenSSH
// or PEM private key, optional passphrase) or by password.
//
// What SFTP gives and the local transport gives more: list() reads the server's long listing
// (OpenSSH: modification times to the minute, which with the size is what "settled" compares);
// move() is the protocol's rename, which OpenSSH refuses when the target exists (link + unlink
// on its side: never replaces, like the local transport); write() has no fsync (libcurl does
// not expose fsync@openssh.com): what the server acknowledged closing is what is durable.
//
// Thread-safety: every call takes the transport's mutex (one libcurl handle, one SSH connection
// kept open between calls and opened again when it died), so probe()'s list() from an API
// thread waits for the poller's call in flight. Owns its handle. Failures name the path and the
// cause, never a file's content nor the credentials.

#include <cstdint>
#include <memory>
#include <string>

#include "connectors/file/file_transport.h"
#include "core/config_spec.h"

namespace relais::file {

struct SftpSettings {
  std::string host;
  int port = 22;
  std::string user;
  std::string private_key;     // path; "" = password authentication
  std::string key_passphrase;  // of private_key, when it has one
  std::string password;        // when no private_key
  std::string known_hosts;     // path, required
  int64_t connect_timeout_ms = 10000;
  int64_t timeout_ms = 120000;
};

// The `sftp:` block shared by the watched folder and the file destination.
const ConfigSpec& sftp_spec();
// Reads and checks the block (relative paths from `base_dir`); throws std::invalid_argument
// naming the key at fault (a missing known_hosts file, neither key nor password).
SftpSettings sftp_settings(const ConfigView& block, const std::string& base_dir);

// Start-up only: throws std::runtime_error when known_hosts or the private key cannot be read.
std::unique_ptr<FileTransport> sftp_transport(SftpSettings settings);

}  // namespace relais::file
