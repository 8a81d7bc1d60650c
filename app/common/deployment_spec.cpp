#include "app/common/deployment_spec.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <utility>

#include "engine/base/sha256.h"

namespace sextant::spec {
namespace {

// Limits that keep a spec sane; docs/deployment-spec.md lists the same ranges.
constexpr int kMaxPrompts = 256;
constexpr size_t kMaxPromptBytes = 64 * 1024;
constexpr size_t kMaxLabels = 64;

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s.size() > 60 ? s.substr(0, 57) + "..." : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out + "\"";
}

bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    int n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    for (int k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

// Walks the YAML tree, converting typed fields and collecting every error with its mark.
class Reader {
 public:
  std::vector<SpecError> errors;

  void Error(const YAML::Mark& mark, std::string field, std::string message) {
    SpecError e;
    if (!mark.is_null() && mark.line >= 0) {
      e.line = mark.line + 1;
      e.column = mark.column + 1;
    }
    e.field = std::move(field);
    e.message = std::move(message);
    errors.push_back(std::move(e));
  }

  static std::string Join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }

  static std::string Describe(const YAML::Node& n) {
    switch (n.Type()) {
      case YAML::NodeType::Null:
        return "null";
      case YAML::NodeType::Sequence:
        return "a list";
      case YAML::NodeType::Map:
        return "a mapping";
      case YAML::NodeType::Scalar:
        return n.Tag() == "!" ? "the quoted string " + Quote(n.Scalar()) : Quote(n.Scalar());
      default:
        return "nothing";
    }
  }

  // A mapping's entries in file order, after checking keys are known, unique and scalar.
  // Returns nullopt (and records an error) when n is not a mapping.
  struct Entry {
    YAML::Node key;
    YAML::Node value;
  };
  using Entries = std::map<std::string, Entry>;

  std::optional<Entries> Map(const YAML::Node& n, const YAML::Mark& where, const std::string& path,
                             std::initializer_list<std::string_view> known) {
    if (!n.IsMap()) {
      Error(MarkOf(n, where), path.empty() ? "(document)" : path,
            "expected a mapping, got " + Describe(n));
      return std::nullopt;
    }
    Entries entries;
    for (auto it = n.begin(); it != n.end(); ++it) {
      const YAML::Node k = it->first;  // a copy: `it->` yields a proxy that dies here
      if (!k.IsScalar()) {
        Error(k.Mark(), path, "keys must be plain strings, got " + Describe(k));
        continue;
      }
      const std::string& key = k.Scalar();
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        std::string list;
        for (auto kn : known) list += (list.empty() ? "" : ", ") + std::string(kn);
        Error(k.Mark(), Join(path, key), "unknown field (known here: " + list + ")");
        continue;
      }
      if (entries.count(key) != 0) {
        Error(k.Mark(), Join(path, key), "duplicate key");
        continue;
      }
      entries.emplace(key, Entry{k, it->second});
    }
    return entries;
  }

  // A mapping of free-form keys (labels).
  std::optional<std::vector<Entry>> FreeMap(const YAML::Node& n, const YAML::Mark& where,
                                            const std::string& path) {
    if (!n.IsMap()) {
      Error(MarkOf(n, where), path, "expected a mapping, got " + Describe(n));
      return std::nullopt;
    }
    std::vector<Entry> out;
    std::set<std::string> seen;
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (!it->first.IsScalar()) {
        Error(it->first.Mark(), path, "keys must be plain strings, got " + Describe(it->first));
        continue;
      }
      if (!seen.insert(it->first.Scalar()).second) {
        Error(it->first.Mark(), Join(path, it->first.Scalar()), "duplicate key");
        continue;
      }
      out.push_back({it->first, it->second});
    }
    return out;
  }

  static YAML::Mark MarkOf(const YAML::Node& n, const YAML::Mark& fallback) {
    const YAML::Mark m = n.Mark();
    return (m.is_null() || m.line < 0) ? fallback : m;
  }

  // Required/optional lookups. `where` is the mark used when the field is missing.
  static const Entry* Find(const Entries& e, std::string_view key) {
    auto it = e.find(std::string(key));
    return it == e.end() ? nullptr : &it->second;
  }

  bool Require(const Entries& e, std::string_view key, const YAML::Mark& where,
               const std::string& path) {
    if (Find(e, key) != nullptr) return true;
    Error(where, Join(path, key), "required field is missing");
    return false;
  }

  // A string scalar (plain or quoted). Null is not a string.
  std::optional<std::string> String(const Entry& en, const std::string& field) {
    const YAML::Node& n = en.value;
    if (!n.IsScalar()) {
      Error(MarkOf(n, en.key.Mark()), field, "expected a string, got " + Describe(n));
      return std::nullopt;
    }
    if (!ValidUtf8(n.Scalar())) {
      Error(n.Mark(), field, "not valid UTF-8");
      return std::nullopt;
    }
    return n.Scalar();
  }

  // A number must be a plain (unquoted) scalar: "8" quoted is a string, not a number.
  std::optional<std::string> NumberText(const Entry& en, const std::string& field,
                                        const char* what) {
    const YAML::Node& n = en.value;
    if (!n.IsScalar() || n.Tag() == "!") {
      Error(MarkOf(n, en.key.Mark()), field,
            std::string("expected ") + what + ", got " + Describe(n));
      return std::nullopt;
    }
    return n.Scalar();
  }

  std::optional<int64_t> Int(const Entry& en, const std::string& field, int64_t lo, int64_t hi) {
    auto text = NumberText(en, field, "an integer");
    if (!text) return std::nullopt;
    std::string_view s = *text;
    if (!s.empty() && s[0] == '+') s.remove_prefix(1);
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (!s.empty() && ec == std::errc::result_out_of_range) {
      Error(en.value.Mark(), field,
            "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " +
                *text);
      return std::nullopt;
    }
    if (s.empty() || ec != std::errc() || p != s.data() + s.size()) {
      Error(en.value.Mark(), field, "expected an integer, got " + Describe(en.value));
      return std::nullopt;
    }
    if (v < lo || v > hi) {
      Error(en.value.Mark(), field,
            "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " +
                std::to_string(v));
      return std::nullopt;
    }
    return v;
  }

  std::optional<uint64_t> Uint64(const Entry& en, const std::string& field) {
    auto text = NumberText(en, field, "an unsigned integer");
    if (!text) return std::nullopt;
    std::string_view s = *text;
    if (!s.empty() && s[0] == '+') s.remove_prefix(1);
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size()) {
      Error(en.value.Mark(), field,
            "expected an unsigned integer below 2^64, got " + Describe(en.value));
      return std::nullopt;
    }
    return v;
  }

  // A finite number in [lo, hi] (lo excluded when lo_open).
  std::optional<double> Double(const Entry& en, const std::string& field, double lo, double hi,
                               bool lo_open = false) {
    auto text = NumberText(en, field, "a number");
    if (!text) return std::nullopt;
    std::string_view s = *text;
    if (!s.empty() && s[0] == '+') s.remove_prefix(1);
    double v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v)) {
      Error(en.value.Mark(), field, "expected a finite number, got " + Describe(en.value));
      return std::nullopt;
    }
    if (v == 0.0) v = 0.0;  // -0 and 0 are one value
    if (v < lo || v > hi || (lo_open && v == lo)) {
      std::ostringstream os;
      os << "must be " << (lo_open ? "greater than " : "at least ") << lo << " and at most " << hi
         << ", got " << *text;
      Error(en.value.Mark(), field, os.str());
      return std::nullopt;
    }
    return v;
  }

  std::optional<std::vector<std::pair<std::string, YAML::Mark>>> StringList(
      const Entry& en, const std::string& field) {
    const YAML::Node& n = en.value;
    if (!n.IsSequence()) {
      Error(MarkOf(n, en.key.Mark()), field, "expected a list, got " + Describe(n));
      return std::nullopt;
    }
    std::vector<std::pair<std::string, YAML::Mark>> out;
    bool ok = true;
    for (size_t i = 0; i < n.size(); ++i) {
      const std::string item_field = field + "[" + std::to_string(i) + "]";
      Entry item{en.key, n[i]};
      auto s = String(item, item_field);
      if (!s) {
        ok = false;
        continue;
      }
      out.emplace_back(*s, n[i].Mark());
    }
    if (!ok) return std::nullopt;
    return out;
  }
};

bool MatchesName(const std::string& s) {
  static const std::regex re("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$");
  return std::regex_match(s, re);
}

bool MatchesLabelKey(const std::string& s) {
  static const std::regex re("^[A-Za-z0-9]([-A-Za-z0-9_./]{0,61}[A-Za-z0-9])?$");
  return std::regex_match(s, re);
}

bool MatchesRegion(const std::string& s) {
  // provider/region ("aws/eu-west-1") or a single name ("on-prem").
  static const std::regex re("^[a-z0-9][-a-z0-9_.]*(/[a-z0-9][-a-z0-9_.]*)?$");
  return s.size() <= 128 && std::regex_match(s, re);
}

bool MatchesModelUri(const std::string& s) {
  if (s.empty() || s.size() > 2048) return false;
  for (char c : s) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7F) return false;
  }
  const auto scheme_end = s.find("://");
  if (scheme_end == std::string::npos) return s.find(':') == std::string::npos;
  static const std::regex scheme("^[a-z][a-z0-9+.-]*$");
  return scheme_end > 0 && scheme_end + 3 < s.size() &&
         std::regex_match(s.substr(0, scheme_end), scheme);
}

// "900", 900, "15m", "2h", "30s" -> seconds.
std::optional<int64_t> ParseDuration(Reader& r, const Reader::Entry& en, const std::string& field) {
  const YAML::Node& n = en.value;
  if (n.IsScalar() && n.Tag() != "!") {
    // A plain integer is seconds.
    const std::string& s = n.Scalar();
    if (!s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return r.Int(en, field, 0, 365LL * 24 * 3600);
  }
  if (!n.IsScalar()) {
    r.Error(Reader::MarkOf(n, en.key.Mark()), field,
            "expected a duration (30s, 15m, 2h or seconds), got " + Reader::Describe(n));
    return std::nullopt;
  }
  static const std::regex re("^([0-9]{1,9})(s|m|h)$");
  std::smatch m;
  const std::string& s = n.Scalar();
  if (!std::regex_match(s, m, re)) {
    r.Error(n.Mark(), field,
            "expected a duration (30s, 15m, 2h or seconds), got " + Reader::Describe(n));
    return std::nullopt;
  }
  const int64_t v = std::stoll(m[1].str());
  const int64_t mult = m[2] == "s" ? 1 : m[2] == "m" ? 60 : 3600;
  if (v * mult > 365LL * 24 * 3600) {
    r.Error(n.Mark(), field, "must be at most one year, got " + s);
    return std::nullopt;
  }
  return v * mult;
}

template <typename T, typename U>
void Set(T& dst, const std::optional<U>& v) {
  if (v) dst = static_cast<T>(*v);
}

void ParseModel(Reader& r, const Reader::Entry& en, ModelRef& out) {
  const std::string path = "model";
  auto m = r.Map(en.value, en.key.Mark(), path, {"uri", "sha256"});
  if (!m) return;
  if (r.Require(*m, "uri", en.key.Mark(), path)) {
    const auto* e = Reader::Find(*m, "uri");
    if (auto s = r.String(*e, "model.uri")) {
      if (!MatchesModelUri(*s)) {
        r.Error(e->value.Mark(), "model.uri",
                "expected SCHEME://PATH (file, s3, gs, ...) or a relative path without spaces, "
                "got " +
                    Quote(*s));
      } else {
        out.uri = *s;
      }
    }
  }
  if (r.Require(*m, "sha256", en.key.Mark(), path)) {
    const auto* e = Reader::Find(*m, "sha256");
    if (auto s = r.String(*e, "model.sha256")) {
      std::string lower = *s;
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (!IsLowerHexDigest(lower)) {
        r.Error(e->value.Mark(), "model.sha256",
                "expected 64 hex digits (the model file's sha256), got " + Quote(*s));
      } else {
        out.sha256 = lower;
      }
    }
  }
}

void ParseSampling(Reader& r, const Reader::Entry& en, SamplingDefaults& out) {
  const std::string p = "engine.sampling";
  auto m = r.Map(en.value, en.key.Mark(), p,
                 {"temperature", "topK", "topP", "minP", "repeatPenalty", "repeatLastN", "seed"});
  if (!m) return;
  if (auto* e = Reader::Find(*m, "temperature"))
    Set(out.temperature, r.Double(*e, p + ".temperature", 0, 10));
  if (auto* e = Reader::Find(*m, "topK")) Set(out.top_k, r.Int(*e, p + ".topK", 0, 1000000));
  if (auto* e = Reader::Find(*m, "topP")) Set(out.top_p, r.Double(*e, p + ".topP", 0, 1, true));
  if (auto* e = Reader::Find(*m, "minP")) Set(out.min_p, r.Double(*e, p + ".minP", 0, 1));
  if (auto* e = Reader::Find(*m, "repeatPenalty"))
    Set(out.repeat_penalty, r.Double(*e, p + ".repeatPenalty", 0, 10, true));
  if (auto* e = Reader::Find(*m, "repeatLastN"))
    Set(out.repeat_last_n, r.Int(*e, p + ".repeatLastN", 0, 1000000));
  if (auto* e = Reader::Find(*m, "seed")) Set(out.seed, r.Uint64(*e, p + ".seed"));
}

void ParseEngine(Reader& r, const Reader::Entry& en, EngineSettings& out) {
  const std::string p = "engine";
  auto m = r.Map(en.value, en.key.Mark(), p,
                 {"backend", "chatTemplate", "contextLength", "maxBatch", "threads", "sampling"});
  if (!m) return;
  if (auto* e = Reader::Find(*m, "chatTemplate")) {
    if (auto s = r.String(*e, "engine.chatTemplate")) {
      if (!s->empty() && !chat::BuiltinTemplate(*s)) {
        r.Error(e->value.Mark(), "engine.chatTemplate",
                "expected \"\" (the model's own) or a built-in template (" +
                    chat::BuiltinTemplateList() + "), got " + Quote(*s));
      } else {
        out.chat_template = *s;
      }
    }
  }
  if (auto* e = Reader::Find(*m, "backend")) {
    if (auto s = r.String(*e, "engine.backend")) {
      if (*s != "auto" && *s != "cpu" && *s != "cuda" && *s != "hip") {
        r.Error(e->value.Mark(), "engine.backend",
                "expected one of auto, cpu, cuda, hip, got " + Quote(*s));
      } else {
        out.backend = *s;
      }
    }
  }
  if (auto* e = Reader::Find(*m, "contextLength"))
    Set(out.context_length, r.Int(*e, "engine.contextLength", 0, 1 << 20));
  if (auto* e = Reader::Find(*m, "maxBatch"))
    Set(out.max_batch, r.Int(*e, "engine.maxBatch", 1, 4096));
  if (auto* e = Reader::Find(*m, "threads")) Set(out.threads, r.Int(*e, "engine.threads", 0, 4096));
  if (auto* e = Reader::Find(*m, "sampling")) ParseSampling(r, *e, out.sampling);
}

void ParseResources(Reader& r, const Reader::Entry& en, Resources& out) {
  auto m = r.Map(en.value, en.key.Mark(), "resources", {"gpu", "replicas"});
  if (!m) return;
  if (auto* e = Reader::Find(*m, "gpu")) {
    if (auto g = r.Map(e->value, e->key.Mark(), "resources.gpu", {"model", "count"})) {
      if (auto* x = Reader::Find(*g, "model"))
        Set(out.gpu_model, r.String(*x, "resources.gpu.model"));
      if (auto* x = Reader::Find(*g, "count"))
        Set(out.gpu_count, r.Int(*x, "resources.gpu.count", 0, 64));
    }
  }
  bool max_given = false;
  YAML::Mark max_mark;
  if (auto* e = Reader::Find(*m, "replicas")) {
    if (auto g = r.Map(e->value, e->key.Mark(), "resources.replicas", {"min", "max"})) {
      if (auto* x = Reader::Find(*g, "min"))
        Set(out.replicas_min, r.Int(*x, "resources.replicas.min", 0, 10000));
      if (auto* x = Reader::Find(*g, "max")) {
        max_given = true;
        max_mark = x->value.Mark();
        Set(out.replicas_max, r.Int(*x, "resources.replicas.max", 1, 10000));
      }
    }
  }
  if (!max_given) out.replicas_max = std::max(out.replicas_min, 1);
  if (max_given && out.replicas_max < out.replicas_min) {
    r.Error(max_mark, "resources.replicas.max",
            "must be at least replicas.min (" + std::to_string(out.replicas_min) + "), got " +
                std::to_string(out.replicas_max));
  }
}

void ParseScaling(Reader& r, const Reader::Entry& en, Scaling& out) {
  auto m = r.Map(en.value, en.key.Mark(), "scaling",
                 {"targetQueueDepth", "scaleToZeroAfter", "targetInFlight", "scaleUpWindow",
                  "scaleDownWindow", "queueTimeout", "maxQueue"});
  if (!m) return;
  if (auto* e = Reader::Find(*m, "targetQueueDepth"))
    Set(out.target_queue_depth, r.Int(*e, "scaling.targetQueueDepth", 1, 100000));
  if (auto* e = Reader::Find(*m, "scaleToZeroAfter"))
    Set(out.scale_to_zero_after_seconds, ParseDuration(r, *e, "scaling.scaleToZeroAfter"));
  if (auto* e = Reader::Find(*m, "targetInFlight"))
    Set(out.target_in_flight, r.Int(*e, "scaling.targetInFlight", 0, 100000));
  if (auto* e = Reader::Find(*m, "scaleUpWindow"))
    Set(out.scale_up_window_seconds, ParseDuration(r, *e, "scaling.scaleUpWindow"));
  if (auto* e = Reader::Find(*m, "scaleDownWindow"))
    Set(out.scale_down_window_seconds, ParseDuration(r, *e, "scaling.scaleDownWindow"));
  if (auto* e = Reader::Find(*m, "queueTimeout")) {
    const std::optional<int64_t> v = ParseDuration(r, *e, "scaling.queueTimeout");
    if (v && *v < 1) {
      r.Error(e->value.Mark(), "scaling.queueTimeout",
              "must be at least 1s, got " + e->value.Scalar());
    } else {
      Set(out.queue_timeout_seconds, v);
    }
  }
  if (auto* e = Reader::Find(*m, "maxQueue"))
    Set(out.max_queue, r.Int(*e, "scaling.maxQueue", 0, 100000));
}

// One prompt: a string, or {messages: [{role, content}, ...]}.
void ParsePrompt(Reader& r, const Reader::Entry& en, const std::string& f,
                 std::vector<ValidationPrompt>& out) {
  if (!en.value.IsMap()) {
    auto text = r.String(en, f);
    if (!text) return;
    if (text->empty()) {
      r.Error(en.value.Mark(), f, "a prompt must not be empty");
    } else if (text->size() > kMaxPromptBytes) {
      r.Error(en.value.Mark(), f, "a prompt is at most 64 KiB");
    } else {
      out.emplace_back(std::move(*text));
    }
    return;
  }
  auto m = r.Map(en.value, en.key.Mark(), f, {"messages"});
  if (!m || !r.Require(*m, "messages", en.value.Mark(), f)) return;
  const auto* e = Reader::Find(*m, "messages");
  const std::string mf = f + ".messages";
  if (!e->value.IsSequence() || e->value.size() == 0) {
    r.Error(Reader::MarkOf(e->value, e->key.Mark()), mf,
            "expected a list of at least one {role, content}, got " + Reader::Describe(e->value));
    return;
  }
  std::vector<chat::Message> messages;
  size_t bytes = 0;
  bool ok = true;
  for (size_t i = 0; i < e->value.size(); ++i) {
    const std::string item = mf + "[" + std::to_string(i) + "]";
    const YAML::Node& node = e->value[i];
    auto fields = r.Map(node, e->key.Mark(), item, {"role", "content"});
    if (!fields) {
      ok = false;
      continue;
    }
    chat::Message msg;
    const bool have_role = r.Require(*fields, "role", node.Mark(), item);
    const bool have_content = r.Require(*fields, "content", node.Mark(), item);
    if (!have_role || !have_content) {
      ok = false;
      continue;
    }
    const auto* role = Reader::Find(*fields, "role");
    if (auto s = r.String(*role, item + ".role")) {
      if (*s != "system" && *s != "user" && *s != "assistant") {
        r.Error(role->value.Mark(), item + ".role",
                "expected one of system, user, assistant, got " + Quote(*s));
        ok = false;
      } else {
        msg.role = *s;
      }
    } else {
      ok = false;
    }
    if (auto s = r.String(*Reader::Find(*fields, "content"), item + ".content")) {
      msg.content = *s;
      bytes += s->size();
    } else {
      ok = false;
    }
    messages.push_back(std::move(msg));
  }
  if (bytes > kMaxPromptBytes) {
    r.Error(e->value.Mark(), mf, "a conversation is at most 64 KiB of content");
    ok = false;
  }
  if (ok && std::none_of(messages.begin(), messages.end(),
                         [](const chat::Message& x) { return x.role == "user"; })) {
    r.Error(e->value.Mark(), mf, "a conversation needs at least one user message");
    ok = false;
  }
  if (ok) out.push_back(ValidationPrompt::Conversation(std::move(messages)));
}

void ParseValidation(Reader& r, const Reader::Entry& en, Validation& out) {
  const std::string p = "validation";
  auto m = r.Map(en.value, en.key.Mark(), p, {"prompts", "maxTokens", "thresholds"});
  if (!m) return;
  if (r.Require(*m, "prompts", en.key.Mark(), p)) {
    const auto* e = Reader::Find(*m, "prompts");
    const YAML::Node& list = e->value;
    if (!list.IsSequence()) {
      r.Error(Reader::MarkOf(list, e->key.Mark()), "validation.prompts",
              "expected a list, got " + Reader::Describe(list));
    } else if (list.size() == 0) {
      r.Error(Reader::MarkOf(list, e->key.Mark()), "validation.prompts",
              "needs at least one prompt");
    } else if (list.size() > static_cast<size_t>(kMaxPrompts)) {
      r.Error(list.Mark(), "validation.prompts",
              "at most " + std::to_string(kMaxPrompts) + " prompts, got " +
                  std::to_string(list.size()));
    } else {
      for (size_t i = 0; i < list.size(); ++i) {
        ParsePrompt(r, Reader::Entry{e->key, list[i]},
                    "validation.prompts[" + std::to_string(i) + "]", out.prompts);
      }
    }
  }
  if (auto* e = Reader::Find(*m, "maxTokens"))
    Set(out.max_tokens, r.Int(*e, "validation.maxTokens", 1, 65536));
  if (auto* e = Reader::Find(*m, "thresholds")) {
    const std::string tp = "validation.thresholds";
    if (auto t =
            r.Map(e->value, e->key.Mark(), tp, {"maxTimeToFirstTokenMs", "minTokensPerSecond"})) {
      if (auto* x = Reader::Find(*t, "maxTimeToFirstTokenMs"))
        Set(out.thresholds.max_ttft_ms, r.Double(*x, tp + ".maxTimeToFirstTokenMs", 0, 3.6e6));
      if (auto* x = Reader::Find(*t, "minTokensPerSecond"))
        Set(out.thresholds.min_tokens_per_second, r.Double(*x, tp + ".minTokensPerSecond", 0, 1e9));
    }
  }
}

void ParsePolicy(Reader& r, const Reader::Entry& en, Policy& out) {
  auto m = r.Map(en.value, en.key.Mark(), "policy", {"allowedRegions", "labels"});
  if (!m) return;
  if (auto* e = Reader::Find(*m, "allowedRegions")) {
    if (auto list = r.StringList(*e, "policy.allowedRegions")) {
      std::set<std::string> seen;
      for (size_t i = 0; i < list->size(); ++i) {
        const auto& [region, mark] = (*list)[i];
        const std::string f = "policy.allowedRegions[" + std::to_string(i) + "]";
        if (!MatchesRegion(region)) {
          r.Error(mark, f,
                  "expected PROVIDER/REGION (aws/eu-west-1) or a name (on-prem) in lowercase, "
                  "got " +
                      Quote(region));
        } else if (!seen.insert(region).second) {
          r.Error(mark, f, "region listed twice: " + Quote(region));
        } else {
          out.allowed_regions.push_back(region);
        }
      }
      std::sort(out.allowed_regions.begin(), out.allowed_regions.end());
    }
  }
  if (auto* e = Reader::Find(*m, "labels")) {
    if (auto labels = r.FreeMap(e->value, e->key.Mark(), "policy.labels")) {
      if (labels->size() > kMaxLabels) {
        r.Error(e->value.Mark(), "policy.labels", "at most 64 labels");
      }
      for (const auto& l : *labels) {
        const std::string& key = l.key.Scalar();
        const std::string f = "policy.labels." + key;
        if (!MatchesLabelKey(key)) {
          r.Error(l.key.Mark(), f,
                  "a label key is 1-63 characters of letters, digits, '-', '_', '.', '/', "
                  "starting and ending with a letter or digit");
          continue;
        }
        auto v = r.String(l, f);
        if (!v) continue;
        if (v->size() > 256) {
          r.Error(l.value.Mark(), f, "a label value is at most 256 bytes");
          continue;
        }
        out.labels[key] = *v;
      }
    }
  }
}

}  // namespace

std::string SpecError::ToString(std::string_view file) const {
  std::string out;
  if (!file.empty()) out += std::string(file) + ":";
  if (line > 0) out += std::to_string(line) + ":" + std::to_string(column) + ":";
  if (!out.empty()) out += " ";
  if (!field.empty()) out += field + ": ";
  return out + message;
}

namespace {

// Where each YAML document of a text starts, from the parser's events. yaml-cpp 0.7's LoadAll
// never returns on some malformed input (",#" alone: a document that consumes nothing, again
// and again, each one more node), so the documents are counted here and the count stops where
// a document starts at the same offset as the one before.
class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

}  // namespace

SpecParseResult ParseDeploymentSpec(std::string_view yaml_text) {
  SpecParseResult result;
  Reader r;
  const std::string text(yaml_text);
  DocumentStarts documents;
  YAML::Node first;
  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    while (parser.HandleNextDocument(documents)) {
      const size_t n = documents.starts.size();
      if (n >= 2 && documents.starts[n - 1].pos == documents.starts[n - 2].pos) {
        const YAML::Mark& at = documents.starts[n - 1];
        const bool in_text = at.pos >= 0 && static_cast<size_t>(at.pos) < text.size();
        r.Error(at, "",
                "YAML syntax: unexpected " +
                    (in_text ? "'" + std::string(1, text[static_cast<size_t>(at.pos)]) + "'"
                             : std::string("end of file")));
        result.errors = std::move(r.errors);
        return result;
      }
    }
    if (!documents.starts.empty()) first = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    r.Error(e.mark, "", "YAML syntax: " + e.msg);
    result.errors = std::move(r.errors);
    return result;
  } catch (const std::exception& e) {
    r.Error(YAML::Mark::null_mark(), "", std::string("YAML: ") + e.what());
    result.errors = std::move(r.errors);
    return result;
  }
  if (documents.starts.empty()) {
    SpecError e{1, 1, "", "empty file: expected a Deployment spec"};
    result.errors.push_back(e);
    return result;
  }
  if (documents.starts.size() > 1) {
    r.Error(
        documents.starts[1], "",
        "one spec per file, found " + std::to_string(documents.starts.size()) + " YAML documents");
  }
  try {
    const YAML::Node& root = first;
    YAML::Mark top;
    top.line = 0;
    top.column = 0;
    auto m = r.Map(root, top, "",
                   {"apiVersion", "kind", "name", "model", "engine", "resources", "scaling",
                    "validation", "policy"});
    if (m) {
      DeploymentSpec& s = result.spec;
      if (r.Require(*m, "apiVersion", top, "")) {
        const auto* e = Reader::Find(*m, "apiVersion");
        if (auto v = r.String(*e, "apiVersion"); v && *v != kApiVersion) {
          r.Error(e->value.Mark(), "apiVersion",
                  "expected " + std::string(kApiVersion) + ", got " + Quote(*v));
        }
      }
      if (r.Require(*m, "kind", top, "")) {
        const auto* e = Reader::Find(*m, "kind");
        if (auto v = r.String(*e, "kind"); v && *v != kKind) {
          r.Error(e->value.Mark(), "kind", "expected " + std::string(kKind) + ", got " + Quote(*v));
        }
      }
      if (r.Require(*m, "name", top, "")) {
        const auto* e = Reader::Find(*m, "name");
        if (auto v = r.String(*e, "name")) {
          if (!MatchesName(*v)) {
            r.Error(e->value.Mark(), "name",
                    "expected 1-63 lowercase letters, digits or '-', starting and ending with a "
                    "letter or digit, got " +
                        Quote(*v));
          } else {
            s.name = *v;
          }
        }
      }
      if (r.Require(*m, "model", top, "")) ParseModel(r, *Reader::Find(*m, "model"), s.model);
      if (auto* e = Reader::Find(*m, "engine")) ParseEngine(r, *e, s.engine);
      if (auto* e = Reader::Find(*m, "resources")) ParseResources(r, *e, s.resources);
      if (auto* e = Reader::Find(*m, "scaling")) ParseScaling(r, *e, s.scaling);
      if (r.Require(*m, "validation", top, "")) {
        ParseValidation(r, *Reader::Find(*m, "validation"), s.validation);
      }
      if (auto* e = Reader::Find(*m, "policy")) ParsePolicy(r, *e, s.policy);
    }
  } catch (const std::exception& e) {
    // yaml-cpp reports some structural problems only when a node is read.
    r.Error(YAML::Mark::null_mark(), "", std::string("YAML: ") + e.what());
  }
  std::stable_sort(r.errors.begin(), r.errors.end(), [](const SpecError& a, const SpecError& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  result.errors = std::move(r.errors);
  return result;
}

Result<DeploymentSpec> LoadDeploymentSpec(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) {
    return Status::NotFound("no such spec file: " + file.string());
  }
  const auto size = std::filesystem::file_size(file, ec);
  if (ec) return Status::Unavailable("cannot read " + file.string() + ": " + ec.message());
  if (size > 4 * 1024 * 1024) {
    return Status::InvalidArgument(file.string() + ": a spec is at most 4 MiB, this file is " +
                                   std::to_string(size) + " bytes");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status::Unavailable("cannot open " + file.string());
  std::ostringstream text;
  text << in.rdbuf();
  SpecParseResult parsed = ParseDeploymentSpec(text.str());
  if (!parsed.ok()) {
    std::string msg;
    for (const auto& e : parsed.errors) {
      if (!msg.empty()) msg += "\n";
      msg += e.ToString(file.string());
    }
    return Status::InvalidArgument(msg);
  }
  return std::move(parsed.spec);
}

nlohmann::json ToCanonicalJsonValue(const DeploymentSpec& s) {
  using nlohmann::json;
  json labels = json::object();
  for (const auto& [k, v] : s.policy.labels) labels[k] = v;
  std::vector<std::string> regions = s.policy.allowed_regions;
  std::sort(regions.begin(), regions.end());
  // A text prompt is a string; a conversation {"messages": [{"content", "role"}, ...]}.
  json prompts = json::array();
  for (const ValidationPrompt& p : s.validation.prompts) {
    if (!p.is_conversation()) {
      prompts.push_back(p.text);
      continue;
    }
    json messages = json::array();
    for (const chat::Message& m : p.messages) {
      messages.push_back({{"role", m.role}, {"content", m.content}});
    }
    prompts.push_back({{"messages", messages}});
  }
  return json{
      {"apiVersion", kApiVersion},
      {"kind", kKind},
      {"name", s.name},
      {"model", {{"uri", s.model.uri}, {"sha256", s.model.sha256}}},
      {"engine",
       {{"backend", s.engine.backend},
        {"chatTemplate", s.engine.chat_template},
        {"contextLength", s.engine.context_length},
        {"maxBatch", s.engine.max_batch},
        {"threads", s.engine.threads},
        {"sampling",
         {{"temperature", s.engine.sampling.temperature},
          {"topK", s.engine.sampling.top_k},
          {"topP", s.engine.sampling.top_p},
          {"minP", s.engine.sampling.min_p},
          {"repeatPenalty", s.engine.sampling.repeat_penalty},
          {"repeatLastN", s.engine.sampling.repeat_last_n},
          {"seed", s.engine.sampling.seed}}}}},
      {"resources",
       {{"gpu", {{"model", s.resources.gpu_model}, {"count", s.resources.gpu_count}}},
        {"replicas", {{"min", s.resources.replicas_min}, {"max", s.resources.replicas_max}}}}},
      {"scaling",
       {{"targetQueueDepth", s.scaling.target_queue_depth},
        {"scaleToZeroAfter", s.scaling.scale_to_zero_after_seconds},
        {"targetInFlight", s.scaling.target_in_flight},
        {"scaleUpWindow", s.scaling.scale_up_window_seconds},
        {"scaleDownWindow", s.scaling.scale_down_window_seconds},
        {"queueTimeout", s.scaling.queue_timeout_seconds},
        {"maxQueue", s.scaling.max_queue}}},
      {"validation",
       {{"prompts", prompts},
        {"maxTokens", s.validation.max_tokens},
        {"thresholds",
         {{"maxTimeToFirstTokenMs", s.validation.thresholds.max_ttft_ms},
          {"minTokensPerSecond", s.validation.thresholds.min_tokens_per_second}}}}},
      {"policy", {{"allowedRegions", regions}, {"labels", labels}}},
  };
}

std::string CanonicalJson(const DeploymentSpec& spec) {
  // nlohmann::json objects are std::map: keys come out sorted by byte order. dump() without an
  // indent has no whitespace; doubles print in their shortest round-trip form.
  return ToCanonicalJsonValue(spec).dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
}

std::string SpecDigest(const DeploymentSpec& spec) { return Sha256Hex(CanonicalJson(spec)); }

}  // namespace sextant::spec
