#include "engine/gguf/hf_vocab.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "engine/tokenizer/pretokenizer.h"

namespace sextant::gguf {
namespace {

using json = nlohmann::json;
using unicode::PreTokenizer;

// GGUF token types.
constexpr int32_t kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6;

constexpr size_t kMaxTokens = size_t{1} << 24;

struct Ctx {
  std::string name;
  Status Error(const std::string& field, const std::string& what) const {
    return Status::InvalidArgument(name + ": " + field + ": " + what);
  }
};

// A special token named in tokenizer_config.json: a string, or {"content": ...}; empty if absent
// or null.
Result<std::string> SpecialText(const json& config, const char* key, const Ctx& cfg) {
  if (!config.is_object() || !config.contains(key) || config[key].is_null()) return std::string();
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    return v["content"].get<std::string>();
  }
  return cfg.Error(key, "expected a string or an object with \"content\"");
}

Result<std::optional<bool>> OptionalBool(const json& config, const char* key, const Ctx& cfg) {
  if (!config.is_object() || !config.contains(key) || config[key].is_null()) {
    return std::optional<bool>();
  }
  if (!config[key].is_boolean()) return cfg.Error(key, "expected true or false");
  return std::optional<bool>(config[key].get<bool>());
}

// The pre-tokenizer's splits as stages (pretokenizer.h), or an error naming what is unsupported.
Status CollectStages(const json& node, const Ctx& ctx, const std::string& where,
                     std::vector<PreTokenizer::Stage>& stages, bool& after_byte_level) {
  if (node.is_null()) return Status::Ok();
  if (!node.is_object() || !node.contains("type") || !node["type"].is_string()) {
    return ctx.Error(where, "expected an object with a \"type\"");
  }
  const std::string type = node["type"].get<std::string>();
  if (type == "Sequence") {
    if (!node.contains("pretokenizers") || !node["pretokenizers"].is_array()) {
      return ctx.Error(where + ".pretokenizers", "expected an array");
    }
    for (size_t i = 0; i < node["pretokenizers"].size(); ++i) {
      SEXTANT_RETURN_IF_ERROR(CollectStages(node["pretokenizers"][i], ctx,
                                            where + ".pretokenizers[" + std::to_string(i) + "]",
                                            stages, after_byte_level));
    }
    return Status::Ok();
  }
  if (type == "ByteLevel") {
    if (node.value("add_prefix_space", false)) {
      return ctx.Error(where, "ByteLevel with add_prefix_space is not supported");
    }
    if (node.value("use_regex", true)) {
      stages.push_back({PreTokenizer::StagesOf("gpt-2")[0].pattern, false});
    }
    after_byte_level = true;
    return Status::Ok();
  }
  if (type == "Split") {
    const json& pat = node.contains("pattern") ? node["pattern"] : json();
    if (node.value("behavior", std::string()) != "Isolated" || node.value("invert", false)) {
      return ctx.Error(where,
                       "only Split with behavior \"Isolated\" and invert false is supported");
    }
    if (pat.is_object() && pat.contains("Regex") && pat["Regex"].is_string()) {
      stages.push_back({pat["Regex"].get<std::string>(), after_byte_level});
      return Status::Ok();
    }
    return ctx.Error(where + ".pattern", "expected {\"Regex\": ...}");
  }
  if (type == "Digits") {
    stages.push_back(
        {node.value("individual_digits", false) ? "\\p{N}" : "\\p{N}+", after_byte_level});
    return Status::Ok();
  }
  if (type == "Punctuation") {
    stages.push_back({"[\\p{P}\\$\\+<=>\\^~\\|`]+", after_byte_level});
    return Status::Ok();
  }
  return ctx.Error(where, "pre-tokenizer type '" + type + "' is not supported");
}

bool MentionsByteLevel(const json& node) {
  if (node.is_object()) {
    if (node.contains("type") && node["type"] == "ByteLevel") return true;
    for (const auto& [k, v] : node.items()) {
      if (MentionsByteLevel(v)) return true;
    }
  } else if (node.is_array()) {
    for (const json& v : node) {
      if (MentionsByteLevel(v)) return true;
    }
  }
  return false;
}

// Whether a normalizer or pre-tokenizer prepends "▁" (SentencePiece's add_dummy_prefix).
bool PrependsSpaceMarker(const json& node) {
  if (node.is_object()) {
    const std::string type = node.value("type", std::string());
    if (type == "Prepend" && node.value("prepend", std::string()) == "\xE2\x96\x81") return true;
    if (type == "Metaspace") {
      const std::string scheme = node.value("prepend_scheme", std::string("always"));
      if (scheme != "never" && node.value("add_prefix_space", true)) return true;
    }
    for (const auto& [k, v] : node.items()) {
      if (PrependsSpaceMarker(v)) return true;
    }
  } else if (node.is_array()) {
    for (const json& v : node) {
      if (PrependsSpaceMarker(v)) return true;
    }
  }
  return false;
}

// The post-processor's template for one sequence: whether it starts with `bos` / ends with `eos`.
void TemplateAdds(const json& post, const std::string& bos, const std::string& eos, bool& add_bos,
                  bool& add_eos, bool& found) {
  if (!post.is_object()) return;
  const std::string type = post.value("type", std::string());
  if (type == "Sequence" && post.contains("processors") && post["processors"].is_array()) {
    for (const json& p : post["processors"]) TemplateAdds(p, bos, eos, add_bos, add_eos, found);
    return;
  }
  if (type != "TemplateProcessing" || !post.contains("single") || !post["single"].is_array()) {
    return;
  }
  const json& single = post["single"];
  auto special = [](const json& item) -> std::string {
    if (item.is_object() && item.contains("SpecialToken") && item["SpecialToken"].is_object()) {
      return item["SpecialToken"].value("id", std::string());
    }
    return "";
  };
  found = true;
  if (!single.empty()) {
    add_bos = !bos.empty() && special(single.front()) == bos;
    add_eos = !eos.empty() && special(single.back()) == eos;
  }
}

}  // namespace

Result<HfVocab> HfVocabFromJson(const std::string& tokenizer_json, const std::string& config_json,
                                const std::string& name) {
  const Ctx ctx{name};
  const Ctx cfg{"tokenizer_config.json"};
  json tj = json::parse(tokenizer_json, nullptr, /*allow_exceptions=*/false);
  if (tj.is_discarded() || !tj.is_object()) return ctx.Error("(file)", "not a JSON object");
  json config = json::object();
  if (!config_json.empty()) {
    config = json::parse(config_json, nullptr, false);
    if (config.is_discarded() || !config.is_object()) {
      return cfg.Error("(file)", "not a JSON object");
    }
  }
  if (!tj.contains("model") || !tj["model"].is_object()) return ctx.Error("model", "missing");
  const json& model = tj["model"];
  const std::string type = model.value("type", std::string("BPE"));
  if (type != "BPE") {
    return ctx.Error("model.type", "'" + type + "' is not supported (BPE only)");
  }
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    return ctx.Error("model.vocab", "expected an object of token -> id");
  }

  // Tokens by id: the model's vocabulary, then the added tokens.
  std::map<int64_t, std::pair<std::string, int32_t>> by_id;  // id -> (text, type)
  for (const auto& [text, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() >= static_cast<int64_t>(kMaxTokens)) {
      return ctx.Error("model.vocab['" + text + "']", "id is not an integer in 0..2^24");
    }
    if (!by_id.emplace(id.get<int64_t>(), std::make_pair(text, kNormal)).second) {
      return ctx.Error("model.vocab['" + text + "']",
                       "id " + std::to_string(id.get<int64_t>()) + " is used twice");
    }
  }
  if (tj.contains("added_tokens") && !tj["added_tokens"].is_null()) {
    if (!tj["added_tokens"].is_array()) return ctx.Error("added_tokens", "expected an array");
    for (size_t i = 0; i < tj["added_tokens"].size(); ++i) {
      const json& a = tj["added_tokens"][i];
      const std::string where = "added_tokens[" + std::to_string(i) + "]";
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
          !a.contains("content") || !a["content"].is_string()) {
        return ctx.Error(where, "expected {\"id\": integer, \"content\": string}");
      }
      const int64_t id = a["id"].get<int64_t>();
      if (id < 0 || id >= static_cast<int64_t>(kMaxTokens))
        return ctx.Error(where, "id out of range");
      const std::string content = a["content"].get<std::string>();
      const int32_t t = a.value("special", false) ? kControl : kUserDefined;
      auto it = by_id.find(id);
      if (it != by_id.end() && it->second.first != content) {
        return ctx.Error(where, "id " + std::to_string(id) + " is '" + it->second.first +
                                    "' in model.vocab but '" + content + "' here");
      }
      by_id[id] = {content, t};
    }
  }
  if (by_id.empty()) return ctx.Error("model.vocab", "empty");
  const int64_t n = by_id.rbegin()->first + 1;

  HfVocab v;
  v.tokens.resize(static_cast<size_t>(n));
  v.token_types.assign(static_cast<size_t>(n), kUnused);
  for (int64_t i = 0; i < n; ++i)
    v.tokens[static_cast<size_t>(i)] = "[PAD" + std::to_string(i) + "]";
  std::unordered_map<std::string, int32_t> id_of;
  for (const auto& [id, entry] : by_id) {
    v.tokens[static_cast<size_t>(id)] = entry.first;
    v.token_types[static_cast<size_t>(id)] = entry.second;
    id_of.emplace(entry.first, static_cast<int32_t>(id));
  }

  // Merges, as "left right".
  std::vector<std::string> merges;
  if (model.contains("merges") && !model["merges"].is_null()) {
    if (!model["merges"].is_array()) return ctx.Error("model.merges", "expected an array");
    const json& m = model["merges"];
    merges.reserve(m.size());
    for (size_t i = 0; i < m.size(); ++i) {
      if (m[i].is_string()) {
        merges.push_back(m[i].get<std::string>());
      } else if (m[i].is_array() && m[i].size() == 2 && m[i][0].is_string() &&
                 m[i][1].is_string()) {
        merges.push_back(m[i][0].get<std::string>() + " " + m[i][1].get<std::string>());
      } else {
        return ctx.Error("model.merges[" + std::to_string(i) + "]",
                         "expected \"left right\" or [left, right]");
      }
    }
  }

  SEXTANT_ASSIGN_OR_RETURN(const std::string bos, SpecialText(config, "bos_token", cfg));
  SEXTANT_ASSIGN_OR_RETURN(const std::string eos, SpecialText(config, "eos_token", cfg));
  SEXTANT_ASSIGN_OR_RETURN(const std::string pad, SpecialText(config, "pad_token", cfg));
  auto find_id = [&](const std::string& text, const char* key) -> Result<std::optional<uint32_t>> {
    if (text.empty()) return std::optional<uint32_t>();
    auto it = id_of.find(text);
    if (it == id_of.end()) return cfg.Error(key, "'" + text + "' is not a token of " + name);
    return std::optional<uint32_t>(static_cast<uint32_t>(it->second));
  };
  SEXTANT_ASSIGN_OR_RETURN(v.bos_id, find_id(bos, "bos_token"));
  SEXTANT_ASSIGN_OR_RETURN(v.eos_id, find_id(eos, "eos_token"));
  SEXTANT_ASSIGN_OR_RETURN(v.pad_id, find_id(pad, "pad_token"));

  const bool byte_fallback = model.value("byte_fallback", false);
  if (byte_fallback) {
    // SentencePiece-style.
    v.model = "llama";
    if (model.contains("unk_token") && model["unk_token"].is_string()) {
      auto it = id_of.find(model["unk_token"].get<std::string>());
      if (it == id_of.end()) return ctx.Error("model.unk_token", "not a token");
      v.unk_id = static_cast<uint32_t>(it->second);
      v.token_types[static_cast<size_t>(it->second)] = kUnknown;
    }
    for (size_t i = 0; i < v.tokens.size(); ++i) {
      const std::string& t = v.tokens[i];
      if (v.token_types[i] == kNormal && t.size() == 6 && t.compare(0, 3, "<0x") == 0 &&
          t[5] == '>' && std::isxdigit(static_cast<unsigned char>(t[3])) &&
          std::isxdigit(static_cast<unsigned char>(t[4]))) {
        v.token_types[i] = kByte;
      }
    }
    // Scores: the earlier a merge, the higher the score of the token it makes; pieces no merge
    // makes (single characters, special tokens) score 0 below every merge result.
    v.scores.assign(v.tokens.size(), 0.0f);
    std::vector<bool> scored(v.tokens.size(), false);
    for (size_t r = 0; r < merges.size(); ++r) {
      const std::string& m = merges[r];
      const size_t sp = m.find(' ', 1);
      if (sp == std::string::npos) {
        return ctx.Error("model.merges[" + std::to_string(r) + "]", "not two pieces");
      }
      auto it = id_of.find(m.substr(0, sp) + m.substr(sp + 1));
      if (it == id_of.end()) {
        return ctx.Error("model.merges[" + std::to_string(r) + "]", "its result is not a token");
      }
      const auto id = static_cast<size_t>(it->second);
      if (!scored[id]) {
        v.scores[id] = -static_cast<float>(r + 1);
        scored[id] = true;
      }
    }
    v.add_space_prefix = PrependsSpaceMarker(tj.value("normalizer", json())) ||
                         PrependsSpaceMarker(tj.value("pre_tokenizer", json()));
  } else {
    if (!MentionsByteLevel(tj.value("pre_tokenizer", json())) &&
        !MentionsByteLevel(tj.value("decoder", json()))) {
      return ctx.Error("pre_tokenizer",
                       "neither byte-level BPE (ByteLevel) nor SentencePiece-style BPE "
                       "(byte_fallback): not supported");
    }
    v.model = "gpt2";
    v.merges = std::move(merges);
    if (v.merges.empty()) return ctx.Error("model.merges", "missing or empty");
    std::vector<PreTokenizer::Stage> stages;
    bool after = false;
    SEXTANT_RETURN_IF_ERROR(
        CollectStages(tj.value("pre_tokenizer", json()), ctx, "pre_tokenizer", stages, after));
    v.pre = PreTokenizer::NameOfStages(stages);
    if (v.pre.empty()) {
      std::string desc;
      for (const auto& s : stages) desc += (desc.empty() ? "" : ", ") + ("'" + s.pattern + "'");
      return ctx.Error("pre_tokenizer",
                       "its splits [" + desc + "] are those of no supported pre-tokenizer family");
    }
    bool ignore = false;
    PreTokenizer::StagesOf(v.pre, &ignore);
    if (model.value("ignore_merges", false) != ignore) {
      return ctx.Error("model.ignore_merges", std::string(ignore ? "false" : "true") +
                                                  ", but pre-tokenizer '" + v.pre + "' " +
                                                  (ignore ? "ignores" : "applies") + " merges");
    }
  }

  // add_bos / add_eos: the config, else the post-processor's template, else the family default.
  SEXTANT_ASSIGN_OR_RETURN(const std::optional<bool> cfg_bos,
                           OptionalBool(config, "add_bos_token", cfg));
  SEXTANT_ASSIGN_OR_RETURN(const std::optional<bool> cfg_eos,
                           OptionalBool(config, "add_eos_token", cfg));
  bool tmpl_bos = false, tmpl_eos = false, tmpl_found = false;
  TemplateAdds(tj.value("post_processor", json()), bos, eos, tmpl_bos, tmpl_eos, tmpl_found);
  const bool family_bos = v.model == "llama" || v.pre == "llama-bpe";
  v.add_bos = cfg_bos.value_or(tmpl_found ? tmpl_bos : family_bos);
  v.add_eos = cfg_eos.value_or(tmpl_found && tmpl_eos);
  if (v.add_bos && !v.bos_id) {
    // Llama 3's config names its BOS; a model without one cannot ask for it.
    v.add_bos = false;
  }
  if (v.add_eos && !v.eos_id) v.add_eos = false;

  if (config.contains("chat_template") && !config["chat_template"].is_null()) {
    const json& t = config["chat_template"];
    if (t.is_string()) {
      v.chat_template = t.get<std::string>();
    } else if (t.is_array()) {
      for (const json& e : t) {
        if (e.is_object() && e.value("name", std::string()) == "default" &&
            e.contains("template") && e["template"].is_string()) {
          v.chat_template = e["template"].get<std::string>();
        }
      }
      if (v.chat_template.empty()) {
        return cfg.Error("chat_template", "a list without a \"default\" template");
      }
    } else {
      return cfg.Error("chat_template", "expected a string or a list of named templates");
    }
  }
  return v;
}

Result<HfVocab> HfVocabFromFile(const std::filesystem::path& tokenizer_json) {
  auto read = [](const std::filesystem::path& p, std::string& out) -> Status {
    std::ifstream in(p, std::ios::binary);
    if (!in) return Status::NotFound(p.string() + ": cannot open");
    std::ostringstream ss;
    ss << in.rdbuf();
    if (!in.good() && !in.eof()) return Status::Internal(p.string() + ": read error");
    out = ss.str();
    return Status::Ok();
  };
  std::string tj, cj;
  SEXTANT_RETURN_IF_ERROR(read(tokenizer_json, tj));
  const std::filesystem::path config = tokenizer_json.parent_path() / "tokenizer_config.json";
  std::error_code ec;
  if (std::filesystem::exists(config, ec)) SEXTANT_RETURN_IF_ERROR(read(config, cj));
  return HfVocabFromJson(tj, cj, tokenizer_json.string());
}

}  // namespace sextant::gguf
