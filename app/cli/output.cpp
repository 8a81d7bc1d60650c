#include "app/cli/output.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace sextant::cli {

Result<OutputFormat> ParseOutputFormat(std::string_view name) {
  if (name == "table") return OutputFormat::kTable;
  if (name == "json") return OutputFormat::kJson;
  if (name == "csv") return OutputFormat::kCsv;
  return Status::InvalidArgument("unknown output format '" + std::string(name) +
                                 "' (expected table, json or csv)");
}

void OutputTable::AddRow(std::vector<nlohmann::json> row, Tone tone) {
  row.resize(columns.size());
  rows.push_back(std::move(row));
  tones.resize(rows.size() - 1, Tone::kNormal);
  tones.push_back(tone);
}

std::string CellText(const nlohmann::json& cell) {
  if (cell.is_null()) return "-";
  if (cell.is_string()) return cell.get<std::string>();
  if (cell.is_boolean()) return cell.get<bool>() ? "true" : "false";
  if (cell.is_number_integer() || cell.is_number_unsigned()) return cell.dump();
  if (cell.is_number_float()) {
    double v = cell.get<double>();
    if (!std::isfinite(v)) return "-";
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.4f", v);
    std::string s = buf;
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
    if (s == "-0") s = "0";
    return s;
  }
  return cell.dump();
}

namespace {

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

const char* ToneCode(Tone t) {
  switch (t) {
    case Tone::kGood:
      return "\x1b[32m";
    case Tone::kWarn:
      return "\x1b[33m";
    case Tone::kBad:
      return "\x1b[31m";
    case Tone::kDim:
      return "\x1b[2m";
    case Tone::kNormal:
      break;
  }
  return "";
}

// Display width of UTF-8 text (code points; good enough for the text the console prints).
size_t Width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace

void PrintTable(const OutputTable& table, OutputFormat format, std::ostream& out, bool colour) {
  switch (format) {
    case OutputFormat::kJson: {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& row : table.rows) {
        nlohmann::json obj = nlohmann::json::object();
        for (size_t i = 0; i < table.columns.size(); ++i) {
          obj[table.columns[i]] = i < row.size() ? row[i] : nlohmann::json();
        }
        arr.push_back(std::move(obj));
      }
      out << arr.dump(2) << "\n";
      return;
    }
    case OutputFormat::kCsv: {
      for (size_t i = 0; i < table.columns.size(); ++i) {
        out << (i ? "," : "") << CsvField(table.columns[i]);
      }
      out << "\r\n";
      for (const auto& row : table.rows) {
        for (size_t i = 0; i < table.columns.size(); ++i) {
          std::string text = i < row.size() && !row[i].is_null() ? CellText(row[i]) : "";
          out << (i ? "," : "") << CsvField(text);
        }
        out << "\r\n";
      }
      return;
    }
    case OutputFormat::kTable:
      break;
  }
  std::vector<size_t> widths(table.columns.size());
  std::vector<std::vector<std::string>> cells;
  for (size_t i = 0; i < table.columns.size(); ++i) widths[i] = Width(table.columns[i]);
  for (const auto& row : table.rows) {
    std::vector<std::string> texts;
    for (size_t i = 0; i < table.columns.size(); ++i) {
      texts.push_back(i < row.size() ? CellText(row[i]) : "-");
      widths[i] = std::max(widths[i], Width(texts.back()));
    }
    cells.push_back(std::move(texts));
  }
  auto line = [&](const std::vector<std::string>& texts) {
    std::string s;
    for (size_t i = 0; i < texts.size(); ++i) {
      s += texts[i];
      if (i + 1 < texts.size()) s += std::string(widths[i] - Width(texts[i]) + 2, ' ');
    }
    return s;
  };
  std::vector<std::string> header;
  for (const auto& c : table.columns) {
    std::string up = c;
    std::transform(up.begin(), up.end(), up.begin(), ::toupper);
    header.push_back(up);
  }
  out << (colour ? "\x1b[1m" : "") << line(header) << (colour ? "\x1b[0m" : "") << "\n";
  for (size_t r = 0; r < cells.size(); ++r) {
    const Tone tone = r < table.tones.size() ? table.tones[r] : Tone::kNormal;
    const bool paint = colour && tone != Tone::kNormal;
    out << (paint ? ToneCode(tone) : "") << line(cells[r]) << (paint ? "\x1b[0m" : "") << "\n";
  }
}

bool ColourWanted(FILE* stream) {
  if (std::getenv("NO_COLOR") != nullptr) return false;
  const char* term = std::getenv("TERM");
  if (term == nullptr || std::strcmp(term, "dumb") == 0) return false;
  return ::isatty(::fileno(stream)) == 1;
}

}  // namespace sextant::cli
