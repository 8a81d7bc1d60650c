// Columns of the console database that hold JSON (labels, regions): their encoding, in one
// place. Internal to app/console/store.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace sextant::console {

std::string LabelsToJson(const std::map<std::string, std::string>& labels);
// A column that is not a JSON object of strings reads as no labels (entries of other types are
// skipped): the column is only ever written by LabelsToJson.
std::map<std::string, std::string> LabelsFromJson(const std::string& s);
std::vector<std::string> StringsFromJson(const std::string& s);

}  // namespace sextant::console
