#pragma once
// Versioned configuration documents kept in the store: mappings and lookup tables. Every
// change is a new version with author, time and comment; one version per document is active;
// activating is atomic; rollback is activating an earlier version.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "core/store_access.h"

namespace relais {

struct DocumentVersion {
  std::string kind;  // "mapping" | "table"
  std::string name;
  int64_t version = 0;
  std::string format;  // "yaml" | "csv"
  std::string content;
  std::string author;
  std::string comment;
  Millis created_at = 0;
  bool active = false;
};

struct Activation {
  std::string kind, name;
  int64_t version = 0;
  std::string by, comment;
  Millis at = 0;
};

// Thread-safe (each call uses its own short transaction on a dedicated connection, serialised
// by an internal mutex). Works beside a running relais on the same file (SQLite locking).
class DocumentStore {
 public:
  virtual ~DocumentStore() = default;
  // Adds a version (numbered max+1); activates it when `activate`. Returns the version.
  virtual int64_t add(const DocumentVersion& doc, bool activate) = 0;
  // Makes `version` the active one. 404 when it does not exist.
  virtual Status activate(const std::string& kind, const std::string& name, int64_t version,
                          const std::string& by, const std::string& comment) = 0;
  // version 0 = the active one.
  virtual std::optional<DocumentVersion> get(const std::string& kind, const std::string& name,
                                             int64_t version) = 0;
  // All versions of a document, newest first, without content.
  virtual std::vector<DocumentVersion> versions(const std::string& kind,
                                                const std::string& name) = 0;
  // The active version of every document of a kind, with content.
  virtual std::vector<DocumentVersion> active(const std::string& kind) = 0;
  virtual std::vector<Activation> activations(const std::string& kind, const std::string& name) = 0;
  // Increases whenever any activation happens (for watchers that poll).
  virtual int64_t generation() = 0;
};

}  // namespace relais
