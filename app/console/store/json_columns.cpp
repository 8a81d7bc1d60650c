#include "app/console/store/json_columns.h"

#include <nlohmann/json.hpp>

namespace sextant::console {

using nlohmann::json;

std::string LabelsToJson(const std::map<std::string, std::string>& labels) {
  return json(labels).dump();
}

std::map<std::string, std::string> LabelsFromJson(const std::string& s) {
  std::map<std::string, std::string> out;
  auto j = json::parse(s, nullptr, false);
  if (j.is_object()) {
    for (auto& [k, v] : j.items()) {
      if (v.is_string()) out[k] = v.get<std::string>();
    }
  }
  return out;
}

std::vector<std::string> StringsFromJson(const std::string& s) {
  std::vector<std::string> out;
  auto j = json::parse(s, nullptr, false);
  if (j.is_array()) {
    for (auto& e : j) {
      if (e.is_string()) out.push_back(e.get<std::string>());
    }
  }
  return out;
}

}  // namespace sextant::console
