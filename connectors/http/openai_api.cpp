#include "connectors/http/openai_api.h"

#include <cmath>
#include <cstdio>
#include <limits>

namespace sextant::http {

using nlohmann::json;

std::string DumpJson(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string ApiError::ToJson() const {
  json e = {{"message", message},
            {"type", type},
            {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", code.empty() ? json(nullptr) : json(code)}};
  return DumpJson(json{{"error", e}});
}

namespace {

const char* JsonTypeName(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a number";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    default:
      return "an unknown value";
  }
}

bool Fail(ApiError* error, const std::string& param, const std::string& message) {
  error->http_status = 400;
  error->param = param;
  error->message = param.empty() ? message : "'" + param + "': " + message;
  error->type = "invalid_request_error";
  return false;
}

bool ReadNumber(const json& body, const char* field, double lo, double hi, bool lo_open,
                std::optional<double>* out, ApiError* error) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_number()) {
    return Fail(error, field, std::string("must be a number, not ") + JsonTypeName(*it));
  }
  const double v = it->get<double>();
  if (!std::isfinite(v) || v > hi || v < lo || (lo_open && v == lo)) {
    char range[64];
    std::snprintf(range, sizeof(range), "%s%g, %g]", lo_open ? "(" : "[", lo, hi);
    return Fail(error, field, std::string("must be in ") + range);
  }
  *out = v;
  return true;
}

bool ReadBool(const json& body, const char* field, bool* out, ApiError* error,
              const std::string& param_prefix = "") {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_boolean()) {
    return Fail(error, param_prefix + field,
                std::string("must be a boolean, not ") + JsonTypeName(*it));
  }
  *out = it->get<bool>();
  return true;
}

bool ReadContent(const json& v, const std::string& param, std::string* out, ApiError* error) {
  if (v.is_string()) {
    *out = v.get<std::string>();
    return true;
  }
  if (v.is_array()) {
    out->clear();
    for (size_t i = 0; i < v.size(); ++i) {
      const json& part = v[i];
      const std::string p = param + "[" + std::to_string(i) + "]";
      if (!part.is_object()) return Fail(error, p, "must be an object");
      auto type = part.find("type");
      if (type == part.end() || !type->is_string() || type->get<std::string>() != "text") {
        return Fail(error, p + ".type", "only \"text\" content parts are supported");
      }
      auto text = part.find("text");
      if (text == part.end() || !text->is_string()) {
        return Fail(error, p + ".text", "must be a string");
      }
      *out += text->get<std::string>();
    }
    return true;
  }
  return Fail(error, param,
              std::string("must be a string or an array of text parts, not ") + JsonTypeName(v));
}

}  // namespace

bool CheckJsonBounds(std::string_view text, const JsonLimits& limits, ApiError* error) {
  int depth = 0;
  size_t values = 0;
  bool in_string = false;
  bool escaped = false;
  bool in_scalar = false;  // inside a number or literal
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    const bool scalar_char = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                             (c >= 'A' && c <= 'Z') || c == '-' || c == '+' || c == '.';
    bool starts_value = false;
    if (c == '"') {
      in_string = true;
      starts_value = true;
    } else if (c == '[' || c == '{') {
      starts_value = true;
      if (++depth > limits.max_depth) {
        Fail(error, "",
             "the JSON nests deeper than " + std::to_string(limits.max_depth) +
                 " levels (at byte " + std::to_string(i) + ")");
        error->code = "json_too_deep";
        return false;
      }
    } else if (c == ']' || c == '}') {
      --depth;
    } else if (scalar_char && !in_scalar) {
      starts_value = true;
    }
    in_scalar = scalar_char;
    if (starts_value && ++values > limits.max_values) {
      Fail(error, "",
           "the JSON holds more than " + std::to_string(limits.max_values) + " values (at byte " +
               std::to_string(i) + ")");
      error->code = "json_too_many_values";
      return false;
    }
  }
  return true;
}

std::optional<CompletionRequest> ParseCompletionRequest(std::string_view body, ApiKind kind,
                                                        ApiError* error, const JsonLimits& limits) {
  if (!CheckJsonBounds(body, limits, error)) return std::nullopt;
  json j;
  try {
    j = json::parse(body.begin(), body.end());
  } catch (const json::parse_error& e) {
    Fail(error, "", "the body is not valid JSON (at byte " + std::to_string(e.byte) + ")");
    return std::nullopt;
  } catch (const json::out_of_range&) {
    // nlohmann refuses a number that overflows a double (1e309) with out_of_range 406.
    Fail(error, "", "a number in the body is too large (it would be infinite)");
    return std::nullopt;
  } catch (const json::exception& e) {
    Fail(error, "", std::string("the body is not valid JSON (") + e.what() + ")");
    return std::nullopt;
  }
  if (!j.is_object()) {
    Fail(error, "", std::string("the body must be a JSON object, not ") + JsonTypeName(j));
    return std::nullopt;
  }
  CompletionRequest r;
  r.kind = kind;

  auto model = j.find("model");
  if (model == j.end() || model->is_null()) {
    Fail(error, "model", "is required");
    return std::nullopt;
  }
  if (!model->is_string() || model->get<std::string>().empty()) {
    Fail(error, "model", "must be a non-empty string");
    return std::nullopt;
  }
  r.model = model->get<std::string>();

  if (kind == ApiKind::kCompletion) {
    auto prompt = j.find("prompt");
    if (prompt == j.end() || prompt->is_null()) {
      Fail(error, "prompt", "is required");
      return std::nullopt;
    }
    if (prompt->is_string()) {
      r.prompt = prompt->get<std::string>();
    } else if (prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string()) {
      r.prompt = (*prompt)[0].get<std::string>();
    } else if (prompt->is_array() && !prompt->empty() && (*prompt)[0].is_number_integer()) {
      for (size_t i = 0; i < prompt->size(); ++i) {
        const json& t = (*prompt)[i];
        if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
            t.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
          Fail(error, "prompt[" + std::to_string(i) + "]", "must be a token id (integer >= 0)");
          return std::nullopt;
        }
        r.prompt_tokens.push_back(static_cast<int32_t>(t.get<int64_t>()));
      }
    } else if (prompt->is_array() && prompt->size() > 1) {
      Fail(error, "prompt", "only one prompt per request is supported");
      return std::nullopt;
    } else {
      Fail(error, "prompt",
           std::string("must be a string or an array of token ids, not ") + JsonTypeName(*prompt));
      return std::nullopt;
    }
  } else {
    auto messages = j.find("messages");
    if (messages == j.end() || messages->is_null()) {
      Fail(error, "messages", "is required");
      return std::nullopt;
    }
    if (!messages->is_array() || messages->empty()) {
      Fail(error, "messages", "must be a non-empty array of messages");
      return std::nullopt;
    }
    for (size_t i = 0; i < messages->size(); ++i) {
      const json& m = (*messages)[i];
      const std::string p = "messages[" + std::to_string(i) + "]";
      if (!m.is_object()) {
        Fail(error, p, "must be an object");
        return std::nullopt;
      }
      ChatMessage msg;
      auto role = m.find("role");
      if (role == m.end() || !role->is_string()) {
        Fail(error, p + ".role", "must be a string");
        return std::nullopt;
      }
      msg.role = role->get<std::string>();
      if (msg.role == "developer") msg.role = "system";
      if (msg.role != "system" && msg.role != "user" && msg.role != "assistant") {
        Fail(error, p + ".role", "must be system, user or assistant");
        return std::nullopt;
      }
      auto content = m.find("content");
      if (content == m.end() || content->is_null()) {
        Fail(error, p + ".content", "is required");
        return std::nullopt;
      }
      if (!ReadContent(*content, p + ".content", &msg.content, error)) return std::nullopt;
      r.messages.push_back(std::move(msg));
    }
  }

  for (const char* field : {"max_tokens", "max_completion_tokens"}) {
    auto it = j.find(field);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_number_integer()) {
      Fail(error, field, std::string("must be an integer, not ") + JsonTypeName(*it));
      return std::nullopt;
    }
    const int64_t v = it->get<int64_t>();
    if (v < 1 || v > 1000000) {
      Fail(error, field, "must be between 1 and 1000000");
      return std::nullopt;
    }
    r.max_tokens = static_cast<int>(v);
  }
  if (!ReadNumber(j, "temperature", 0, 2, false, &r.temperature, error)) return std::nullopt;
  if (!ReadNumber(j, "top_p", 0, 1, true, &r.top_p, error)) return std::nullopt;
  if (auto it = j.find("seed"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer()) {
      Fail(error, "seed", std::string("must be an integer, not ") + JsonTypeName(*it));
      return std::nullopt;
    }
    r.seed =
        it->is_number_unsigned() ? it->get<uint64_t>() : static_cast<uint64_t>(it->get<int64_t>());
  }
  if (auto it = j.find("stop"); it != j.end() && !it->is_null()) {
    if (it->is_string()) {
      r.stop.push_back(it->get<std::string>());
    } else if (it->is_array() && it->size() <= 4) {
      for (size_t i = 0; i < it->size(); ++i) {
        if (!(*it)[i].is_string()) {
          Fail(error, "stop[" + std::to_string(i) + "]", "must be a string");
          return std::nullopt;
        }
        r.stop.push_back((*it)[i].get<std::string>());
      }
    } else {
      Fail(error, "stop", "must be a string or an array of at most 4 strings");
      return std::nullopt;
    }
    for (size_t i = 0; i < r.stop.size(); ++i) {
      if (r.stop[i].empty()) {
        Fail(error, "stop", "stop strings must not be empty");
        return std::nullopt;
      }
    }
  }
  if (auto it = j.find("n"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() != 1) {
      Fail(error, "n", "only n = 1 is supported");
      return std::nullopt;
    }
  }
  if (!ReadBool(j, "stream", &r.stream, error)) return std::nullopt;
  if (!ReadBool(j, "ignore_eos", &r.ignore_eos, error)) return std::nullopt;
  if (auto it = j.find("stream_options"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) {
      Fail(error, "stream_options", "must be an object");
      return std::nullopt;
    }
    if (!ReadBool(*it, "include_usage", &r.include_usage, error, "stream_options.")) {
      return std::nullopt;
    }
  }
  // Fields Sextant accepts only at their neutral value.
  for (const char* field : {"frequency_penalty", "presence_penalty"}) {
    auto it = j.find(field);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_number() || it->get<double>() != 0) {
      Fail(error, field, "is not supported (only 0)");
      return std::nullopt;
    }
  }
  for (const char* field : {"logprobs", "echo"}) {
    auto it = j.find(field);
    if (it == j.end() || it->is_null()) continue;
    if (!(it->is_boolean() && !it->get<bool>())) {
      Fail(error, field, "is not supported");
      return std::nullopt;
    }
  }
  if (auto it = j.find("best_of"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() != 1) {
      Fail(error, "best_of", "only best_of = 1 is supported");
      return std::nullopt;
    }
  }
  return r;
}

// ---- Stop strings ------------------------------------------------------------------------------

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}

std::string StopMatcher::Push(std::string_view text) {
  if (stopped_) return {};
  held_.append(text);
  if (stops_.empty()) {
    std::string out;
    out.swap(held_);
    return out;
  }
  // The earliest complete match wins.
  size_t best = std::string::npos;
  for (const std::string& s : stops_) {
    const size_t at = held_.find(s);
    if (at != std::string::npos && at < best) best = at;
  }
  if (best != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, best);
    held_.clear();
    return out;
  }
  // Hold back the longest suffix that is a proper prefix of some stop string.
  size_t keep = 0;
  for (const std::string& s : stops_) {
    const size_t max_len = std::min(s.size() - 1, held_.size());
    for (size_t len = max_len; len > keep; --len) {
      if (held_.compare(held_.size() - len, len, s, 0, len) == 0) {
        keep = len;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopMatcher::Flush() {
  std::string out;
  out.swap(held_);
  return stopped_ ? std::string() : out;
}

// ---- Responses ---------------------------------------------------------------------------------

std::string SseEvent(const json& payload) { return "data: " + DumpJson(payload) + "\n\n"; }

json UsageJson(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

json CompletionResponse(ApiKind kind, const std::string& id, int64_t created,
                        const std::string& model, const std::string& text,
                        const std::string& finish_reason, const Usage& usage) {
  json choice = {{"index", 0}, {"finish_reason", finish_reason}};
  if (kind == ApiKind::kChat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
    choice["logprobs"] = nullptr;
  }
  return {{"id", id},
          {"object", kind == ApiKind::kChat ? "chat.completion" : "text_completion"},
          {"created", created},
          {"model", model},
          {"choices", json::array({choice})},
          {"usage", UsageJson(usage)}};
}

json CompletionChunk(ApiKind kind, const std::string& id, int64_t created, const std::string& model,
                     const std::string& text, bool role_delta, const std::string& finish_reason) {
  json choice = {{"index", 0},
                 {"finish_reason", finish_reason.empty() ? json(nullptr) : json(finish_reason)}};
  if (kind == ApiKind::kChat) {
    json delta = json::object();
    if (role_delta) delta["role"] = "assistant";
    if (!text.empty() || (!role_delta && finish_reason.empty())) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
    choice["logprobs"] = nullptr;
  }
  return {{"id", id},
          {"object", kind == ApiKind::kChat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", model},
          {"choices", json::array({choice})}};
}

json UsageChunk(ApiKind kind, const std::string& id, int64_t created, const std::string& model,
                const Usage& usage) {
  return {{"id", id},
          {"object", kind == ApiKind::kChat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", model},
          {"choices", json::array()},
          {"usage", UsageJson(usage)}};
}

}  // namespace sextant::http
