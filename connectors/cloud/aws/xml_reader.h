// Reading AWS XML answers (pugixml): a parsed document, or a MalformedResponse CallError that
// names the call; and small accessors for the "<set><item>...</item></set>" shapes of EC2 and
// the "<member>" lists of IAM.
// Thread-safety: a parsed document is read-only after parsing; distinct documents are
// independent.
#pragma once

#include <pugixml.hpp>

#include <memory>
#include <string>

#include "connectors/cloud/aws/aws_client.h"

namespace sextant::cloud::aws {

using XmlDoc = std::shared_ptr<pugi::xml_document>;

CallResult<XmlDoc> ParseXml(const ServiceCall& call, const std::string& body);

// The text at a slash-separated element path under `node` ("" when absent).
std::string XmlText(pugi::xml_node node, const char* path);
// As a number; `fallback` when absent or not a number.
int64_t XmlInt(pugi::xml_node node, const char* path, int64_t fallback = 0);
double XmlDouble(pugi::xml_node node, const char* path, double fallback = 0);
bool XmlBool(pugi::xml_node node, const char* path, bool fallback = false);

// The MalformedResponse error for `call`.
CallError Malformed(const ServiceCall& call, std::string message);

// Percent-decodes IAM's URL-encoded policy documents; a document that is already JSON (starts
// with '{') is returned as is.
std::string DecodePolicyDocument(std::string_view s);

}  // namespace sextant::cloud::aws
