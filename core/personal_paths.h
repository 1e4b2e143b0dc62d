#pragma once
// Declared personal paths ("personal: [$.individu, $.to, $.participants[*].email]") of a source
// or a mapping, and the walk that tells, node by node, whether a document's node is personal.
// Syntax: the core's JSON paths ($, .field, [N]) plus [*] for any element; an array the path
// does not index is crossed transparently ($.participants.email names the e-mail of every
// participant). A node is personal when a declared path names it or one of its ancestors.
// Immutable after parse; thread-safe const use.

#include <cstddef>
#include <string>
#include <variant>
#include <vector>

namespace relais {

class PersonalPaths {
 public:
  // A step of a concrete location: a field name, or an array index.
  using Step = std::variant<std::string, size_t>;

  // Parses every text; on the first error returns false and names the path and the position.
  static bool parse(const std::vector<std::string>& texts, PersonalPaths& out, std::string& error);
  // The union of two declarations (e.g. a source's and a mapping's).
  PersonalPaths merged(const PersonalPaths& other) const;

  // The progress of every declared path along one location of a document: start(), then one
  // advance() per step from the root. `personal` is true once a path is complete.
  struct Cursor {
    std::vector<std::pair<size_t, size_t>> live;  // (path, next step)
    bool personal = false;
  };
  Cursor start() const;
  Cursor advance(const Cursor& at, const Step& step) const;

  bool empty() const { return paths_.empty(); }
  const std::vector<std::string>& texts() const { return texts_; }

 private:
  struct Any {};  // [*]
  using PathStep = std::variant<std::string, size_t, Any>;
  std::vector<std::vector<PathStep>> paths_;
  std::vector<std::string> texts_;
};

}  // namespace relais
