#pragma once
// The file destination (connector kind `file`, second half of the `file` connector): each
// delivery's mapped payload becomes a CSV row (columns → paths, delimiter, quote, header,
// encoding incl. Windows-1252) or an XML record, written into files in a local folder or on an
// SFTP server (file_transport.h, sftp_transport.h).
//
// Publishing a file (FilePublisher): written under a hidden temporary name (`.<name>.part`,
// never read by a folder poller), synced (local: fdatasync + folder fsync), the checksum file
// `<name>.sha256` (sha256sum format) published first when configured, then renamed into place
// without replacing. Names come from the deliveries (batch_file_name): a retry after a lost
// rename answer finds its file already there (same size: done) instead of writing it twice; a
// connection dropped mid-file leaves only the temporary name, written again whole at the next
// try.
//
// One file per message (`batch_size: 1`, the default): deliver() publishes it and answers.
// Batched (N messages or T seconds into one file): deliver() adds the row to the open batch and
// answers Outcome::defer — no worker slot waits for the flush; the batch is sealed when full or
// when `batch_wait` passed and a flusher thread of the connector publishes it (retrying with
// back-off, the same name each time); once the file is renamed into place, the batch's
// deliveries are marked written and woken (HubServices::wake_delivery): their next deliver()
// answers delivered with the file's name. Only then are their outcomes recorded, so a batch is
// delivered exactly when its file is in place. A restart loses the open and unflushed batches
// from memory but not their deliveries: still pending in the store, they come back. The batch
// journal (beside the store: `file-batches/<destination>/<file name>`, the ids of a sealed batch
// synced before its file is published) tells each one whether its batch's file is in place
// (delivered, not written again) or not (a new batch). docs/connectors/files.md.
//
// Thread-safety: deliver() from any worker slot; one mutex guards the batches; the flusher
// thread publishes outside it. Owns its transport and its thread (joined by the destructor).

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "connectors/file/file_transport.h"
#include "connectors/file/record_reader.h"
#include "core/connector.h"
#include "core/json_template.h"

namespace relais {
namespace file {

struct FileDestinationSettings {
  std::string path;  // the folder (local, or absolute on the SFTP server)
  std::string prefix = "relais";
  bool xml = false;
  // CSV
  std::vector<std::pair<std::string, JsonPath>> columns;  // header → path in the mapped payload
  char delimiter = ';';
  char quote = '"';
  bool header = true;
  Encoding encoding = Encoding::Utf8;
  std::string line_end = "\r\n";
  // XML
  std::string xml_root = "messages";
  std::string xml_record = "message";
  bool checksum = false;
  size_t batch_size = 1;
  int64_t batch_wait_ms = 60000;
};

// Reads and checks the block (throws std::invalid_argument naming the key at fault).
FileDestinationSettings file_destination_settings(const ConfigView& config,
                                                  const std::string& base_dir);

// Publishes whole files into a folder through a transport: temporary name, rename without
// replacing, checksum beside it. Stateless beyond its references; not thread-safe (one caller
// at a time: the connector serialises through its transport's own lock and its flusher).
class FilePublisher {
 public:
  FilePublisher(FileTransport& transport, std::string dir, bool checksum)
      : transport_(transport), dir_(std::move(dir)), checksum_(checksum) {}
  // Publishes `data` as `name`. Already there with the same size (a retry after a lost
  // answer): success without writing. There with another size: 409, nothing replaced.
  Status publish(const std::string& name, const std::string& data);

 private:
  Status place(const std::string& name, const std::string& data);
  FileTransport& transport_;
  std::string dir_;
  bool checksum_;
};

// The name of the file holding the deliveries `ids` (ascending): `<prefix>-<id>.<ext>` for one,
// `<prefix>-<first>-<last>-<8 hex of the SHA-256 of the list>.<ext>` for a batch (ids
// zero-padded to 12 digits): the same deliveries always give the same name, other deliveries
// another one.
std::string batch_file_name(const FileDestinationSettings& s, const std::vector<int64_t>& ids);

// One record of the file from the mapped payload (a CSV row with its line end, or an XML
// element); false with a French reason (a character the encoding cannot write, a value that is
// not a scalar) — never quoting a value.
bool render_record(const FileDestinationSettings& s, const nlohmann::json& mapped,
                   const std::string& payload, const std::string& content_type, std::string& out,
                   std::string& reason);
// The whole file around its records (CSV header; XML declaration and root).
std::string file_text(const FileDestinationSettings& s, const std::vector<std::string>& records);

}  // namespace file

void register_file_destination(ConnectorRegistry& registry);
const ConfigSpec& file_destination_spec();

}  // namespace relais
