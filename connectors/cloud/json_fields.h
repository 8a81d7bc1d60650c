// Reading fields of JSON that came over the network without trusting its shape: a field of the
// wrong type, or a document that is not an object, reads as absent (the fallback), never as an
// exception. nlohmann::json's value() throws on a type mismatch, so the cloud connectors use
// these instead on anything a server sent.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace sextant::cloud {

inline const nlohmann::json& JsonField(const nlohmann::json& j, const char* key) {
  static const nlohmann::json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

inline std::string JsonString(const nlohmann::json& j, const char* key,
                              const std::string& fallback = "") {
  const nlohmann::json& v = JsonField(j, key);
  return v.is_string() ? v.get<std::string>() : fallback;
}

inline bool JsonBool(const nlohmann::json& j, const char* key, bool fallback = false) {
  const nlohmann::json& v = JsonField(j, key);
  return v.is_boolean() ? v.get<bool>() : fallback;
}

inline int64_t JsonInt(const nlohmann::json& j, const char* key, int64_t fallback = 0) {
  const nlohmann::json& v = JsonField(j, key);
  return v.is_number_integer() ? v.get<int64_t>() : fallback;
}

// The field if it is an object, else an empty object.
inline const nlohmann::json& JsonObject(const nlohmann::json& j, const char* key) {
  static const nlohmann::json kEmpty = nlohmann::json::object();
  const nlohmann::json& v = JsonField(j, key);
  return v.is_object() ? v : kEmpty;
}

// The field if it is an array, else an empty array.
inline const nlohmann::json& JsonArray(const nlohmann::json& j, const char* key) {
  static const nlohmann::json kEmpty = nlohmann::json::array();
  const nlohmann::json& v = JsonField(j, key);
  return v.is_array() ? v : kEmpty;
}

}  // namespace sextant::cloud
