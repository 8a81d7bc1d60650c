#include "connectors/cloud/aws/xml_reader.h"

#include <cstdlib>

namespace sextant::cloud::aws {

CallError Malformed(const ServiceCall& call, std::string message) {
  CallError e;
  e.api_call = call.api_call();
  e.region = call.region;
  e.code = "MalformedResponse";
  e.message = std::move(message);
  return e;
}

CallResult<XmlDoc> ParseXml(const ServiceCall& call, const std::string& body) {
  auto doc = std::make_shared<pugi::xml_document>();
  pugi::xml_parse_result r = doc->load_buffer(body.data(), body.size());
  if (!r) {
    return Malformed(call, std::string("the answer is not XML: ") + r.description() +
                               " at offset " + std::to_string(r.offset));
  }
  if (!doc->document_element()) return Malformed(call, "the answer has no XML element");
  return doc;
}

std::string XmlText(pugi::xml_node node, const char* path) {
  return node.first_element_by_path(path).text().as_string();
}

int64_t XmlInt(pugi::xml_node node, const char* path, int64_t fallback) {
  const std::string s = XmlText(node, path);
  if (s.empty()) return fallback;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  return end != nullptr && *end == '\0' ? v : fallback;
}

double XmlDouble(pugi::xml_node node, const char* path, double fallback) {
  const std::string s = XmlText(node, path);
  if (s.empty()) return fallback;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  return end != nullptr && *end == '\0' ? v : fallback;
}

bool XmlBool(pugi::xml_node node, const char* path, bool fallback) {
  const std::string s = XmlText(node, path);
  if (s == "true") return true;
  if (s == "false") return false;
  return fallback;
}

std::string DecodePolicyDocument(std::string_view s) {
  const size_t first = s.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && s[first] == '{') return std::string(s);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
      };
      const int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

}  // namespace sextant::cloud::aws
