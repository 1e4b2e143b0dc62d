// A fast JSON serializer producing the same text as nlohmann::json::dump() (compact,
// ensure_ascii = false, invalid UTF-8 replaced by U+FFFD). dump() validates UTF-8 through a
// byte-wise state machine that dominated the apply() profile. Pure; thread-safe.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace relais::mappings {

void write_json(std::string& out, const nlohmann::json& v);

}  // namespace relais::mappings
