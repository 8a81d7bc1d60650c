// Tabular output shared by the console's verbs: `-o table|json|csv`.
//
// A verb builds one OutputTable (column names and rows of typed cells) and prints it; the
// format decides the rendering: aligned columns for people, a JSON array of objects (typed
// values) or RFC 4180 CSV for scripts. Colours (a row's tone) are used only when writing to a
// terminal that accepts them (not when NO_COLOR is set or TERM is "dumb").
// Thread-safety: pure functions over values.
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/status.h"

namespace sextant::cli {

enum class OutputFormat { kTable, kJson, kCsv };

// "table", "json" or "csv"; anything else is INVALID_ARGUMENT naming the value.
Result<OutputFormat> ParseOutputFormat(std::string_view name);

// How a row reads at a glance; on a terminal it colours the row.
enum class Tone { kNormal, kGood, kWarn, kBad, kDim };

struct OutputTable {
  std::vector<std::string> columns;
  // Each row holds one value per column: string, number, bool or null.
  std::vector<std::vector<nlohmann::json>> rows;
  std::vector<Tone> tones;  // optional; one per row when present

  void AddRow(std::vector<nlohmann::json> row, Tone tone = Tone::kNormal);
};

// A cell as text: strings unquoted, numbers in shortest form (doubles with up to 4 decimals),
// null as "-".
std::string CellText(const nlohmann::json& cell);

void PrintTable(const OutputTable& table, OutputFormat format, std::ostream& out,
                bool colour = false);

// True when `stream` is a terminal and colours are welcome.
bool ColourWanted(FILE* stream);

}  // namespace sextant::cli
