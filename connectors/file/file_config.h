#pragma once
// What the two kinds of the file connector — the watched folder (`poll: {kind: folder}`) and the
// file destination (`connector: file`) — read alike from their configuration block: the folder
// (local, or on the SFTP server of an `sftp:` block), the transport that reaches it, and the
// one-character CSV settings. Start-up only: failures throw std::invalid_argument naming the
// key. Stateless.

#include <memory>
#include <string>

#include "connectors/file/file_transport.h"
#include "core/config_spec.h"

namespace relais::file {

// `key` (a folder) of the block, normalised without a trailing '/'. Over SFTP an absolute path on
// the server (a relative one is refused); locally, relative paths resolve from `base_dir`.
std::string folder_path(const ConfigView& block, const std::string& key,
                        const std::string& base_dir);
// SFTP when the block has `sftp:`, else the local disk.
std::unique_ptr<FileTransport> transport_for(const ConfigView& block, const std::string& base_dir);
// The configuration check of the `sftp:` block, when there is one.
void check_transport(const ConfigView& block);
// One character (`\t` or `tab` for a tab).
char single_char(const ConfigView& block, const std::string& key);

}  // namespace relais::file
